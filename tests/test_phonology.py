"""How the voices of other languages say English: stand-in phones, inserted vowels, X-SAMPA, spellings."""

from speechrnn import phonology, voices


def test_stand_ins_replace_each_phone_by_the_first_the_database_has():
    phones = frozenset({"_", "t", "r", "e", "o", "w", "s", "n"})
    pho = "_ 50\nT 100\nr= 80 0 200 50 210 100 220\n@U 120 0 150\nh 60\nQ 70\n; a comment\n"
    assert phonology.stand_in_phonemes(pho, phones).splitlines() == [
        "_ 50",
        "t 100",  # no /T/: "three" as "tree", as many learners say it
        "e 40 0 200",  # a stand-in of two phones halves the duration; each pitch point goes with its half
        "r 40 0 210 100 220",
        "o 60 0 150",  # the diphthong /@U/ as "o w"
        "w 60",
        # /h/, with none of its stand-ins there, is dropped, as a Spaniard or an Italian drops it
        "Q 70",  # a phone the table does not know stays, for mbrola to report if it lacks it
        "; a comment",
    ]


def test_pico_says_us1s_phonemes_in_the_x_sampa_of_its_language():
    spanish = frozenset({"t", "r", "i", "e", "s", "o", "u", "x", "jj", "b", "n"})
    three = "_ 50\nT 100\nr 60\ni 150 20 230\n_ 40\n"
    assert phonology.pico_xsampa(three, spanish) == 'tr"i'  # no /T/: "tree"; the stress before the vowel
    # /h/ as the Spanish jota, /Z/ as its y (X-SAMPA j\\), /v/ as b, /@U/ as "o u"; pauses left out
    assert phonology.pico_xsampa("h 60\n@U 90\n_ 30\nZ 80\nv 70\n", spanish) == 'x"ouj\\b'
    assert phonology.pico_xsampa("s 60\nt 40\n", spanish) == "st"  # no vowel, no stress
    german = frozenset({"@", "R", "6", "n", "a", "v"})
    assert phonology.pico_xsampa("n 50\nr= 90\n", german) == 'n"@R'  # no /r/: German's own


def test_us1s_phonemes_are_spelt_as_each_language_writes():
    seven, three = "_ 50\ns 90\nE 70 0 204\nv 65\n@ 33\nn 122\n_ 300\n", "T 80\nr 40\ni 120\n"
    spell = phonology.spelling
    assert (spell("russian", seven), spell("russian", three)) == ("сэван", "сри")  # Russian: no /T/, "sree"
    assert (spell("ukrainian", seven), spell("ukrainian", three)) == ("севан", "трі")  # Ukrainian: е, і
    assert (spell("polish", three), spell("albanian", three)) == ("tri", "thri")
    assert spell("esperanto", seven) == "seven"
    # aspiration is not spelt; Polish writes /v/ w, /w/ ł, /S/ sz; Esperanto /w/ ŭ
    assert spell("polish", "t_h 60\nw 40\nV 80\nv 50\nS 70\n") == "tławsz"
    assert spell("esperanto", "w 40\nA 80\n") == "ŭa"
    # every spelling spells every American phoneme, in letters of its own alphabet only (else RHVoice
    # reads the word in another of its languages)
    alphabets = {
        "ukrainian": set("абвгґдеєжзиіїйклмнопрстуфхцчшщьюя"), "macedonian": set("абвгдѓежзѕијклљмнњопрстќуфхцчџш"),
        "russian": set("абвгдеёжзийклмнопрстуфхцчшщъыьэюя"), "polish": set("aąbcćdeęfghijklłmnńoóprsśtuwyzźż"),
        "esperanto": set("abcĉdefgĝhĥijĵklmnoprsŝtuŭvz"), "albanian": set("abcçdeëfghijklmnopqrstuvxyz"),
    }  # fmt: skip
    for language, letters in phonology.RHVOICE_SPELLINGS.items():
        american = {phone.removesuffix("_h") for phone in phonology.MBROLA_STAND_INS} - {"_"}
        assert american <= set(letters), language
        alphabet = alphabets.get(language, alphabets["russian"] | set("әөүҗңһ"))  # Tatar's extra letters
        assert set("".join(letters.values())) <= alphabet, language
    assert set(voices.RHVOICE_MAPPED.values()) == set(phonology.RHVOICE_SPELLINGS)


def test_a_vowel_breaks_the_clusters_a_database_lacks():
    pho = "_ 50\ns 80\nt 60\nA 150 50 120\np 70\n_ 50\n"  # "stop"
    breaks = {("s", "t"), ("p", "_")}
    assert phonology.epenthesize(pho, breaks, "i").splitlines() == [
        "_ 50",
        f"i {phonology.EPENTHESIS_MS}",  # a cluster after a pause is opened by the vowel: "istop"
        "s 80",
        "t 60",
        "A 150 50 120",
        "p 70",
        f"i {phonology.EPENTHESIS_MS}",  # a final consonant the database cannot end on: "stopi"
        "_ 50",
    ]
    # inside a word the vowel goes between the two consonants; nothing else moves
    assert phonology.epenthesize("_ 50\nf 60\nt 60\n_ 50\n", {("f", "t")}, "e").split() == [
        "_", "50", "f", "60", "e", str(phonology.EPENTHESIS_MS), "t", "60", "_", "50",
    ]  # fmt: skip
    assert phonology.epenthesize(pho, set(), "i") == pho
