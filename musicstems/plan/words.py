"""The prompt vocabulary: how a prompt becomes words, and what each word suggests.

Nothing here is learned: it is a small, readable vocabulary. A prompt is lower-cased, a few
multi-word phrases are joined into single tokens ("bass drum" -> "kick", "drum and bass" ->
"dnb"), and the tables below say which role, texture or feel each word suggests.
:mod:`musicstems.plan.roles` does the scoring; :mod:`musicstems.plan.genres` and
:mod:`musicstems.plan.sounds` read the same words.
"""

from __future__ import annotations

import re

__all__ = ["tokens", "ROLE_WORDS", "WORD_ROLES", "TEXTURE_WORDS", "SPARSE", "BUSY", "DARK",
           "BRIGHT", "HYPNOTIC", "MOVEMENT", "HIGH", "LOW", "MINOR_WORDS", "MAJOR_WORDS"]

# Phrases joined into one token before scoring. Order matters: longer phrases first.
_PHRASES = (
    (r"drum\s*(?:and|&|n|'n'|’n’)\s*bass|d\s*&\s*b|d'n'b", "dnb"),
    (r"bass\s+drums?", "kick"),
    (r"kick\s+drums?", "kick"),
    (r"snare\s+drums?", "snare"),
    (r"hi[\s-]*hats?|hihats?", "hats"),
    (r"four[\s-]+on[\s-]+the[\s-]+floor|4[\s-]+on[\s-]+the[\s-]+floor", "fourfloor"),
    (r"hip[\s-]*hop", "hiphop"),
    (r"lo[\s-]*fi", "lofi"),
    (r"r\s*&\s*b|rnb", "rnb"),
    (r"deep\s+house", "deephouse"),
    (r"tech\s+house", "techhouse"),
    (r"synth[\s-]*wave", "synthwave"),
    (r"electric\s+piano|e[\s-]piano", "epiano"),
    (r"double\s+bass|upright\s+bass|contra[\s-]*bass", "uprightbass"),
    (r"music\s+box", "musicbox"),
    (r"synth\s+lead", "lead"),
    (r"brass\s+section|horn\s+section", "brass"),
    (r"string\s+(?:section|ensemble|quartet)", "strings"),
    (r"church\s+organ|pipe\s+organ", "pipeorgan"),
    (r"chord\s+stabs?", "stabs"),
    (r"broken\s+chords?", "arp"),
    (r"laid[\s-]+back", "laidback"),
    (r"half[\s-]+time", "halftime"),
    (r"8[\s-]*bit|chip[\s-]*tune", "chiptune"),
)
_PHRASE_RES = tuple((re.compile(rf"\b(?:{p})\b"), token) for p, token in _PHRASES)
_TOKEN_RE = re.compile(r"[a-z0-9]+")

# role -> {word: weight}. Nouns that name the instrument weigh 3.
ROLE_WORDS: dict[str, dict[str, float]] = {
    "drums": {**dict.fromkeys(("drums", "drum", "kick", "kicks", "snare", "snares", "hats",
                                "cymbal", "cymbals", "percussion", "perc", "drumkit", "kit",
                                "breakbeat", "breaks", "clap", "claps", "toms", "rimshot",
                                "shaker", "tambourine", "909", "707", "beat", "beats"), 3.0),
              "fourfloor": 2.0, "groove": 1.0, "punchy": 1.0, "boombap": 2.0},
    "bass": {**dict.fromkeys(("bass", "bassline", "basslines", "subbass", "uprightbass",
                               "reese", "303", "basses"), 3.0),
             "sub": 2.0, "808": 2.0, "wobble": 1.0, "low": 1.0, "rolling": 1.0, "deep": 0.5},
    "pads": {**dict.fromkeys(("pad", "pads", "drone", "drones", "atmosphere", "ambience",
                               "texture", "textures", "choir", "wash", "swells"), 3.0),
             "atmospheric": 2.0, "evolving": 1.0, "lush": 1.0, "dreamy": 1.0, "ethereal": 1.0,
             "swell": 1.0, "ambient": 0.5, "warm": 0.5},
    "piano": {**dict.fromkeys(("piano", "pianos", "epiano", "rhodes", "wurlitzer", "keys",
                                "keyboard", "grand"), 3.0)},
    "lead": {**dict.fromkeys(("lead", "leads", "flute", "sax", "saxophone", "whistle"), 3.0),
             "melody": 2.0, "melodies": 2.0, "hook": 2.0, "topline": 2.0, "solo": 1.5,
             "riff": 1.0, "synth": 1.0, "chiptune": 1.0, "arp": 1.0, "arpeggio": 1.0},
    "guitar": {**dict.fromkeys(("guitar", "guitars", "strum", "strummed", "strumming",
                                 "fingerpicked", "telecaster", "stratocaster"), 3.0),
               "riffs": 1.0, "twangy": 1.0},
    "strings": {**dict.fromkeys(("strings", "string", "violin", "violins", "viola", "violas",
                                  "cello", "cellos", "orchestra", "pizzicato", "pizz"), 3.0),
                "orchestral": 1.0, "ensemble": 1.0, "cinematic": 0.5},
    "brass": {**dict.fromkeys(("brass", "horn", "horns", "trumpet", "trumpets", "trombone",
                                "trombones", "tuba", "flugelhorn"), 3.0), "stabs": 0.5},
    "organ": {**dict.fromkeys(("organ", "organs", "hammond", "b3", "pipeorgan"), 3.0)},
    "bells": {**dict.fromkeys(("bell", "bells", "glockenspiel", "celesta", "chimes",
                                "musicbox", "vibraphone", "vibes", "marimba", "xylophone",
                                "kalimba"), 3.0), "twinkling": 1.0, "sparkling": 0.5},
    "pluck": {**dict.fromkeys(("pluck", "plucks", "harp", "koto"), 3.0), "plucked": 1.0},
}
WORD_ROLES: dict[str, list[tuple[str, float]]] = {}
for _role, _words in ROLE_WORDS.items():
    for _word, _weight in _words.items():
        WORD_ROLES.setdefault(_word, []).append((_role, _weight))

# texture words override the role's default texture (the last one in a prompt wins)
TEXTURE_WORDS = {
    "arp": "arp", "arps": "arp", "arpeggio": "arp", "arpeggios": "arp", "arpeggiated": "arp",
    "fingerpicked": "arp", "picking": "arp", "sequence": "arp", "sequenced": "arp",
    "melody": "melody", "melodies": "melody", "hook": "melody", "topline": "melody",
    "riff": "melody", "solo": "melody", "line": "melody", "tune": "melody",
    "stabs": "stabs", "stab": "stabs", "chords": "comp", "chord": "comp", "comping": "comp",
    "sustained": "sustain", "held": "sustain", "drone": "sustain", "strummed": "strum",
    "strum": "strum", "strumming": "strum",
}

# feel words: each set moves one field of a StemStyle (see musicstems.plan.roles)
SPARSE = {"sparse", "minimal", "simple", "slow", "laidback", "gentle", "calm",
          "halftime", "spacious", "lazy", "relaxed", "quiet", "subtle", "minimalist"}
BUSY = {"busy", "driving", "rolling", "fast", "energetic", "dense", "frantic", "rapid",
        "running", "intricate", "complex", "bouncy", "relentless", "pumping", "galloping",
        "16th", "sixteenth", "hyper", "aggressive", "skittering"}
DARK = {"dark", "warm", "mellow", "soft", "muffled", "dusty", "smooth", "round",
        "muted", "gloomy", "murky", "lofi", "vintage", "analog", "analogue", "subby"}
BRIGHT = {"bright", "crisp", "shiny", "sharp", "airy", "sparkling", "glassy", "harsh",
          "shimmering", "brilliant", "clear", "cutting", "screaming", "biting", "sizzling"}
HYPNOTIC = {"hypnotic", "repetitive", "looping", "loop", "trance", "trancey", "ostinato",
            "mesmerizing", "minimal", "driving"}
MOVEMENT = {"evolving", "sweeping", "moving", "modulated", "pulsing", "breathing", "swirling",
            "filtered", "morphing", "shifting"}
HIGH = {"high", "soaring", "airy", "tiny", "piccolo", "twinkling"}
LOW = {"low", "deep", "sub", "subby", "baritone", "rumbling"}

# mood words pick the mode when no key is given (musicstems.plan.genres.mood_mode)
MINOR_WORDS = {"dark", "sad", "melancholic", "melancholy", "moody", "minor", "sinister",
               "gloomy", "haunting", "eerie", "brooding", "somber", "sombre", "tense", "ominous"}
MAJOR_WORDS = {"happy", "uplifting", "cheerful", "sunny", "major", "euphoric", "joyful",
               "bright", "playful", "triumphant", "hopeful", "summer", "feelgood"}


def tokens(text: str | None) -> list[str]:
    """Lower-cased words of ``text`` with the known phrases joined (``"hi-hats"`` -> ``"hats"``)."""
    if not text:
        return []
    lowered = text.lower()
    for pattern, token in _PHRASE_RES:
        lowered = pattern.sub(f" {token} ", lowered)
    return _TOKEN_RE.findall(lowered)
