"""The texts of the synthetic corpus: the `_unknown_` vocabulary and the non-command sentences.

Neither may hold a command word, a word starting with one, or a near-homophone of one ("to" for "two",
"write" for "right", "lift" for "left"), so that `_unknown_` and the sentences are never what a user would
call a command. Near misses that differ by a whole sound (night/right, sick/six) are wanted: they teach the
label head where a command word ends.
"""

from __future__ import annotations

import re

import numpy as np

# Common English words for `_unknown_`: none is a command word, contains one, or is a near-homophone of one.
UNKNOWN_WORDS = tuple(
    """
    about above across action actor after again against age agree air airport alarm album almost alone along
    already always amount angry animal answer apple april area arm army around arrive art artist ask asleep
    aunt autumn baby bag baker ball banana band bank basket bath battery beach bean bear beautiful because
    become beef before begin behind believe bell belt bench between bicycle big bill black blanket blue board
    boat body bone book boot bottle bottom box brain bread break breakfast bridge bright bring brother brush
    bucket build burn bus business busy butter button buy cake call camera camp candle captain car card care
    carpet carry case castle catch chair chance change cheap cheese chicken child choose church circle city
    class clean clear clock close cloud coat coffee cold color come common computer cook cool copy corner
    country cousin cover crowd dance danger dark daughter dead deal dear decide deep desk dinner doctor
    dollar dream dress drink drive during early earth easy edge egg else empty energy engine enjoy enough
    evening every exam example except family famous farm father feel field fight film finger finish fire
    fish flag flat flower fly food foot forest friend front fruit full funny future game garden gate girl
    glass gold grass great green ground group guess guitar hair half hand hang hard hat heavy hello help
    here high hill history hold holiday honey hope horse hospital hot hotel hour human hungry husband ice
    idea island jacket job juice jump kitchen knife lake lamp language large late laugh lawyer lazy leaf
    lemon letter library light listen little lunch machine magazine make market matter meat meeting milk
    minute mirror money month moon morning mother mountain music name narrow nature near neck needle nurse
    ocean orange other outside owner page paint paper parent park party past pencil people pepper piano
    picture pillow place planet plant plate pocket police potato power pretty problem pull purple question
    quiet radio rain reason record red river road rock room rose rule salt sand school science sea season
    shadow share shirt shoe short shoulder silver simple sister sky sleep slow small smile snow soap soft
    soldier something song soup south space spring square star station story street strong student sugar
    summer sun supper table tall taxi tea teacher telephone thank there thing thought thursday ticket tiger
    today tomorrow tooth towel train travel trouble truck uncle under usually vacation valley village
    violin voice wait walk wall warm water weather wedding week welcome window winter woman wonder wood
    world yellow young
    """.split()  # noqa: SIM905 - a word list reads better as text
)

# Near misses of the 35 command words: they share most of a command word's sound (night/right, mine/nine,
# sick/six, head/bed) yet are other words. The live spotter's false alarms came from words like these.
CONFUSABLE_WORDS = tuple(
    """
    head fed bend word third heard burst bat cap cast kit fog log dock dig gown brown round sound drown hate
    weight bait hive dive wife alive hollow swallow fellow toward award coward floor door pour more goat grow
    show though hobby happen puppy mouse blouse turn lane fern theft loft lest laughed marvel martin carving
    mine line pine night nice nail nose note often cloth golf gone john upon honest run fun done none wand
    white ride rice wide ripe heaven several oven sheet shield cheetah shiver sick fix mix sticks sits kicks
    socks top stuff stock drop stamp thread threat thrill trip treat true tray tune tool tomb pup hop upper
    usual vision visit cow vow owl allow vowel yeast mess less chess zebra arrow zoo sierra backyard awkward
    backpack
    """.split()  # noqa: SIM905 - a word list reads better as text
)

_SUBJECTS = (
    "my neighbour", "the teacher", "our family", "a small child", "the old man", "her brother", "the driver",
    "my sister", "the students", "everybody", "the baker", "his father", "the captain", "a stranger",
    "the nurse", "my cousin", "the farmer", "their daughter",
)  # fmt: skip
_VERBS = (
    "painted", "cleaned", "repaired", "bought", "sold", "carried", "found", "watched", "opened", "closed",
    "washed", "borrowed", "noticed", "described", "remembered", "dropped", "lifted", "hid",
)  # fmt: skip
_ADJECTIVES = (
    "small", "yellow", "heavy", "broken", "quiet", "shiny", "wooden", "purple", "ancient", "cheap", "huge",
    "dusty", "clean", "lovely", "strange", "brand new",
)  # fmt: skip
_NOUNS = (
    "window", "basket", "bicycle", "lamp", "kitchen table", "garden gate", "jacket", "piano", "letter",
    "camera", "bridge", "wagon", "blanket", "kettle", "carpet", "ladder", "mirror", "suitcase", "umbrella",
)  # fmt: skip
_TIMES = (
    "yesterday", "last week", "this morning", "every summer", "in the evening", "after lunch",
    "before breakfast", "at the weekend", "a while ago", "all afternoon",
)  # fmt: skip
_FIXED_SENTENCES = (
    "the weather is lovely this afternoon",
    "could you pass me the salt please",
    "i think we should buy a bigger car",
    "the meeting was moved until thursday",
    "she plays the piano every evening",
    "there is a little bakery near the station",
    "my brother likes swimming in the lake",
    "we had pasta and salad for supper",
    "the children built a castle in the sand",
    "please remember the milk and the bread",
    "the train was late again this morning",
    "how was your holiday in the mountains",
    "this coffee tastes a bit bitter",
    "the library closes early in winter",
    "they painted the kitchen a pale blue",
    "i lost my keys somewhere in the garden",
    "the baby is sleeping in the other room",
    "can you hear the rain against the window",
    "the museum has a famous painting",
    "my phone battery is almost empty",
    "we watched a film about the ocean",
    "the soup needs a little more pepper",
    "the shop sells fresh fruit and flowers",
    "he always wears a hat in summer",
    "the moon looks very bright tonight",
    "our teacher gave us extra homework",
    "the bus was full of tired travellers",
    "i would like a glass of water please",
    "the garden is full of roses and tulips",
    "she read the letter twice before answering",
)


def _forbidden(words: tuple[str, ...]) -> set[str]:
    """Words that must not appear in unknown words or sentences for these command words."""
    near = {
        "to", "too", "tu", "know", "for", "fore", "write", "rite", "wright", "of", "won", "ate", "free",
        "fine",
        "lift", "yet", "yep", "bad", "bet", "cut", "dot", "town", "earn", "cup", "cough", "an", "in", "own",
        "when", "do", "who", "through", "eleven", "hero", "how", "now", "step", "shop",
    }  # fmt: skip
    return set(words) | near


def _contains_command(text: str, words: tuple[str, ...]) -> bool:
    """A token equal to a command word or near-homophone, or starting with a command word of 3+ letters."""
    bad = _forbidden(words)
    tokens = re.findall(r"[a-z']+", text.lower())
    return any(t in bad or any(len(w) >= 3 and t.startswith(w) for w in words) for t in tokens)


def unknown_words(words: tuple[str, ...]) -> list[str]:
    """The `_unknown_` vocabulary for a set of command words."""
    return [w for w in UNKNOWN_WORDS + CONFUSABLE_WORDS if not _contains_command(w, words)]


def sentences(words: tuple[str, ...], count: int, rng: np.random.Generator) -> list[str]:
    """`count` sentences containing none of `words` (nor their near-homophones)."""
    out: list[str] = []
    fixed = [s for s in _FIXED_SENTENCES if not _contains_command(s, words)]
    for i in range(count * 50):
        if len(out) >= count:
            break
        if i % 3 == 0 and fixed:
            s = fixed[int(rng.integers(len(fixed)))]
        else:
            pick = [p[int(rng.integers(len(p)))] for p in (_SUBJECTS, _VERBS, _ADJECTIVES, _NOUNS, _TIMES)]
            s = f"{pick[0]} {pick[1]} the {pick[2]} {pick[3]} {pick[4]}"
        if not _contains_command(s, words):
            out.append(s)
    return out
