"""The command vocabularies of Google Speech Commands and the special labels of its tasks."""

# v0.01 has 30 words; v0.02 adds five (backward, forward, follow, learn, visual).
WORDS_V1 = (
    "bed", "bird", "cat", "dog", "down", "eight", "five", "four", "go", "happy", "house", "left", "marvin",
    "nine", "no", "off", "on", "one", "right", "seven", "sheila", "six", "stop", "three", "tree", "two", "up",
    "wow", "yes", "zero",
)  # fmt: skip
WORDS_V2 = tuple(sorted(WORDS_V1 + ("backward", "follow", "forward", "learn", "visual")))

KWS12_WORDS = (
    "yes",
    "no",
    "up",
    "down",
    "left",
    "right",
    "on",
    "off",
    "stop",
    "go",
)  # the 12-class benchmark
SILENCE = "_silence_"  # no speech: a crop of background noise, or nothing
UNKNOWN = "_unknown_"  # speech that is none of the task's words
