"""Prompt understanding: from a stem's prompt and the song's style to an instrument role.

Nothing here is learned: it is a small, readable vocabulary. A prompt is lower-cased, a few
multi-word phrases are joined into single tokens ("bass drum" -> "kick", "drum and bass" ->
"dnb"), and every role scores the words it knows. Instrument nouns weigh 3, words that only
suggest a role ("punchy", "lush", "melody") weigh 1 or 2; the highest score wins, and the later
word wins a tie, because English noun phrases end in their head ("synth lead melody").

What is chosen:

- ``role`` — the instrument: one of :data:`ROLES`.
- ``sound`` — the timbre within the role (``"acid"`` bass, ``"epiano"``, ``"choir"`` pad ...).
- ``texture`` — what the part plays: ``beat``, ``bassline``, ``sustain`` (held chords),
  ``comp`` (rhythmic chords), ``strum``, ``stabs``, ``arp`` or ``melody``.
- ``density`` — 0 sparse, 1 medium, 2 busy; ``brightness`` in [-1, 1]; ``register`` in octaves;
  ``hypnotic`` (a motif that repeats unchanged) and ``movement`` (slow filter sweeps).

:func:`genre_of` reads the style the same way and gives tempo, drum family, swing, preferred
mode and harmonic habits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["ROLES", "TEXTURES", "Genre", "StemStyle", "genre_of", "choose_style", "tokens",
           "DEFAULT_ROLE_ORDER"]

ROLES = ("drums", "bass", "pads", "piano", "lead", "guitar", "strings", "brass", "organ",
         "bells", "pluck")
TEXTURES = ("beat", "bassline", "sustain", "comp", "strum", "stabs", "arp", "melody")
# Stems whose prompt names no instrument take the first of these that no other stem has.
DEFAULT_ROLE_ORDER = ("pads", "bass", "drums", "lead", "piano")

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
_ROLE_WORDS: dict[str, dict[str, float]] = {
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
_WORD_ROLES: dict[str, list[tuple[str, float]]] = {}
for _role, _words in _ROLE_WORDS.items():
    for _word, _weight in _words.items():
        _WORD_ROLES.setdefault(_word, []).append((_role, _weight))

# texture words override the role's default texture
_TEXTURE_WORDS = {
    "arp": "arp", "arps": "arp", "arpeggio": "arp", "arpeggios": "arp", "arpeggiated": "arp",
    "fingerpicked": "arp", "picking": "arp", "sequence": "arp", "sequenced": "arp",
    "melody": "melody", "melodies": "melody", "hook": "melody", "topline": "melody",
    "riff": "melody", "solo": "melody", "line": "melody", "tune": "melody",
    "stabs": "stabs", "stab": "stabs", "chords": "comp", "chord": "comp", "comping": "comp",
    "sustained": "sustain", "held": "sustain", "drone": "sustain", "strummed": "strum",
    "strum": "strum", "strumming": "strum",
}
_DEFAULT_TEXTURE = {"drums": "beat", "bass": "bassline", "pads": "sustain", "piano": "comp",
                    "lead": "melody", "guitar": "strum", "strings": "sustain", "brass": "stabs",
                    "organ": "sustain", "bells": "melody", "pluck": "arp"}
_ALLOWED_TEXTURES = {"drums": ("beat",), "bass": ("bassline",),
                     "pads": ("sustain", "arp", "stabs")}

_SPARSE = {"sparse", "minimal", "simple", "slow", "laidback", "gentle", "calm",
           "halftime", "spacious", "lazy", "relaxed", "quiet", "subtle", "minimalist"}
_BUSY = {"busy", "driving", "rolling", "fast", "energetic", "dense", "frantic", "rapid",
         "running", "intricate", "complex", "bouncy", "relentless", "pumping", "galloping",
         "16th", "sixteenth", "hyper", "aggressive", "skittering"}
_DARK = {"dark", "warm", "mellow", "soft", "muffled", "dusty", "smooth", "round",
         "muted", "gloomy", "murky", "lofi", "vintage", "analog", "analogue", "subby"}
_BRIGHT = {"bright", "crisp", "shiny", "sharp", "airy", "sparkling", "glassy", "harsh",
           "shimmering", "brilliant", "clear", "cutting", "screaming", "biting", "sizzling"}
_HYPNOTIC = {"hypnotic", "repetitive", "looping", "loop", "trance", "trancey", "ostinato",
             "mesmerizing", "minimal", "driving"}
_MOVEMENT = {"evolving", "sweeping", "moving", "modulated", "pulsing", "breathing", "swirling",
             "filtered", "morphing", "shifting"}
_HIGH = {"high", "soaring", "airy", "tiny", "piccolo", "twinkling"}
_LOW = {"low", "deep", "sub", "subby", "baritone", "rumbling"}
_MINOR_WORDS = {"dark", "sad", "melancholic", "melancholy", "moody", "minor", "sinister",
                "gloomy", "haunting", "eerie", "brooding", "somber", "sombre", "tense", "ominous"}
_MAJOR_WORDS = {"happy", "uplifting", "cheerful", "sunny", "major", "euphoric", "joyful",
                "bright", "playful", "triumphant", "hopeful", "summer", "feelgood"}


@dataclass(frozen=True)
class Genre:
    """Habits of a style.

    Attributes
    ----------
    name : str
        Canonical name, e.g. ``"techno"``.
    bpm : float
        Default tempo, beats per minute.
    drums : str
        Drum family: ``fourfloor``, ``backbeat``, ``hiphop``, ``trap``, ``breakbeat``,
        ``ambient``, ``jazz``.
    harmony : str
        Progression bank: ``loop`` (one- and two-chord vamps), ``pop``, ``jazz`` (sevenths),
        ``cinematic``.
    mode : str or None
        Preferred mode when no key is given and the style has no mood word.
    swing : float
        Delay of the off-beat 16ths as a fraction of a 16th note (0 straight, 0.33 triplet feel).
    bars_per_chord : int
        Harmonic rhythm.
    density : int
        0 sparse, 1 medium, 2 busy.
    sevenths : bool
        Chords with sevenths.
    """

    name: str
    bpm: float
    drums: str
    harmony: str
    mode: str | None
    swing: float = 0.0
    bars_per_chord: int = 1
    density: int = 1
    sevenths: bool = False


GENRES: dict[str, Genre] = {g.name: g for g in (
    Genre("techno", 128, "fourfloor", "loop", "minor", density=1),
    Genre("minimal", 125, "fourfloor", "loop", "minor", density=1),
    Genre("techhouse", 125, "fourfloor", "loop", "minor", 0.08),
    Genre("deephouse", 122, "fourfloor", "jazz", "minor", 0.1, sevenths=True),
    Genre("house", 124, "fourfloor", "pop", None, 0.08, sevenths=True),
    Genre("trance", 138, "fourfloor", "pop", "minor", density=2),
    Genre("edm", 128, "fourfloor", "pop", None),
    Genre("disco", 118, "fourfloor", "pop", "major", sevenths=True, density=2),
    Genre("electro", 126, "breakbeat", "loop", "minor"),
    Genre("synthwave", 100, "backbeat", "pop", "minor"),
    Genre("dnb", 174, "breakbeat", "cinematic", "minor", bars_per_chord=2, density=2),
    Genre("jungle", 170, "breakbeat", "loop", "minor", bars_per_chord=2, density=2),
    Genre("dubstep", 140, "trap", "loop", "minor", bars_per_chord=2),
    Genre("trap", 140, "trap", "loop", "minor", bars_per_chord=2),
    Genre("lofi", 80, "hiphop", "jazz", None, 0.25, sevenths=True, density=0),
    Genre("hiphop", 90, "hiphop", "loop", "minor", 0.15),
    Genre("rnb", 92, "hiphop", "jazz", None, 0.15, sevenths=True),
    Genre("funk", 105, "backbeat", "loop", None, 0.12, sevenths=True, density=2),
    Genre("jazz", 120, "jazz", "jazz", None, 0.33, sevenths=True),
    Genre("blues", 96, "backbeat", "pop", "major", 0.3, sevenths=True),
    Genre("rock", 120, "backbeat", "pop", None),
    Genre("metal", 140, "backbeat", "loop", "minor", density=2),
    Genre("punk", 170, "backbeat", "pop", "major", density=2),
    Genre("pop", 112, "backbeat", "pop", "major"),
    Genre("country", 110, "backbeat", "pop", "major"),
    Genre("folk", 100, "backbeat", "pop", "major", density=0),
    Genre("reggae", 75, "hiphop", "pop", "major", 0.1),
    Genre("ambient", 80, "ambient", "cinematic", None, bars_per_chord=2, density=0),
    Genre("downtempo", 95, "hiphop", "jazz", None, 0.1, sevenths=True, density=0),
    Genre("cinematic", 90, "ambient", "cinematic", "minor", bars_per_chord=2, density=0),
    Genre("classical", 100, "ambient", "pop", None, density=0),
    Genre("default", 120, "backbeat", "pop", None),
)}
# words in a style -> genre name; the first listed word found in the text wins
_GENRE_WORDS = (
    ("dnb", "dnb"), ("jungle", "jungle"), ("dubstep", "dubstep"), ("trap", "trap"),
    ("deephouse", "deephouse"), ("techhouse", "techhouse"), ("techno", "techno"),
    ("minimal", "minimal"), ("trance", "trance"), ("house", "house"), ("edm", "edm"),
    ("disco", "disco"), ("electro", "electro"), ("synthwave", "synthwave"),
    ("lofi", "lofi"), ("hiphop", "hiphop"), ("boombap", "hiphop"), ("rap", "hiphop"),
    ("rnb", "rnb"), ("soul", "rnb"), ("funk", "funk"), ("funky", "funk"), ("jazz", "jazz"),
    ("jazzy", "jazz"), ("blues", "blues"), ("metal", "metal"), ("punk", "punk"),
    ("rock", "rock"), ("country", "country"), ("folk", "folk"), ("reggae", "reggae"),
    ("ambient", "ambient"), ("downtempo", "downtempo"), ("chillout", "downtempo"),
    ("chill", "downtempo"), ("cinematic", "cinematic"), ("orchestral", "cinematic"),
    ("epic", "cinematic"), ("soundtrack", "cinematic"), ("classical", "classical"),
    ("pop", "pop"), ("dance", "edm"), ("club", "techno"), ("rave", "techno"),
    ("berlin", "techno"), ("acid", "techno"),
)


def tokens(text: str | None) -> list[str]:
    """Lower-cased words of ``text`` with the known phrases joined (``"hi-hats"`` -> ``"hats"``)."""
    if not text:
        return []
    lowered = text.lower()
    for pattern, token in _PHRASE_RES:
        lowered = pattern.sub(f" {token} ", lowered)
    return _TOKEN_RE.findall(lowered)


def genre_of(*texts: str | None) -> Genre:
    """The genre named in the first of ``texts`` that names one (the style, then prompts), or
    the ``"default"`` genre (120 bpm, backbeat, pop harmony)."""
    for text in texts:
        words = set(tokens(text))
        for word, name in _GENRE_WORDS:
            if word in words:
                return GENRES[name]
    return GENRES["default"]


def mood_mode(*texts: str | None) -> str | None:
    """``"minor"`` or ``"major"`` when the texts carry a mood word (dark, happy ...), else None."""
    score = 0
    for text in texts:
        for word in tokens(text):
            score += (word in _MAJOR_WORDS) - (word in _MINOR_WORDS)
    return None if score == 0 else ("major" if score > 0 else "minor")


@dataclass(frozen=True)
class StemStyle:
    """What a stem's prompt asks for. See the module docstring for the fields."""

    role: str
    sound: str
    texture: str
    density: int
    brightness: float
    register: int
    hypnotic: bool
    movement: bool
    matched: bool

    def to_dict(self) -> dict:
        return {"role": self.role, "sound": self.sound, "texture": self.texture,
                "density": self.density, "brightness": self.brightness,
                "register": self.register, "hypnotic": self.hypnotic,
                "movement": self.movement, "matched": self.matched}


def role_scores(words: list[str]) -> dict[str, tuple[float, int]]:
    """role -> (score, position of its last matching word) for the words of one prompt."""
    scores: dict[str, tuple[float, int]] = {}
    for position, word in enumerate(words):
        for role, weight in _WORD_ROLES.get(word, ()):
            total, _ = scores.get(role, (0.0, -1))
            scores[role] = (total + weight, position)
    return scores


def _role_from(words: list[str]) -> str | None:
    scores = role_scores(words)
    if not scores:
        return None
    return max(scores, key=lambda role: scores[role])


def _first(words: set[str], table: tuple[tuple[tuple[str, ...], str], ...], default: str) -> str:
    for keys, value in table:
        if words.intersection(keys):
            return value
    return default


def _sound(role: str, words: set[str], genre: Genre) -> str:
    g = genre.name
    if role == "drums":
        default = {"fourfloor": "909", "breakbeat": "breaks", "hiphop": "boombap",
                   "trap": "808", "jazz": "acoustic", "ambient": "soft"}.get(genre.drums, "rock")
        if g in ("rock", "metal", "punk", "pop", "country", "folk", "funk", "blues",
                 "synthwave"):
            default = "rock" if g != "synthwave" else "909"
        if g == "lofi":
            default = "lofi"
        return _first(words, ((("808", "trap"), "808"), (("909", "techno", "industrial"), "909"),
                              (("lofi", "dusty", "vinyl"), "lofi"),
                              (("acoustic", "live", "jazz", "brushes", "rock"), "acoustic"
                               if "rock" not in words else "rock"),
                              (("breakbeat", "breaks", "amen", "jungle"), "breaks")), default)
    if role == "bass":
        default = {"techno": "synth", "minimal": "synth", "trance": "synth", "house": "synth",
                   "techhouse": "synth", "deephouse": "synth", "edm": "synth", "electro": "acid",
                   "hiphop": "808", "trap": "808", "dubstep": "reese", "dnb": "reese",
                   "jungle": "sub", "jazz": "upright", "lofi": "upright", "ambient": "sub",
                   "cinematic": "sub", "rock": "electric", "pop": "electric", "funk": "electric",
                   "metal": "electric", "punk": "electric", "country": "electric",
                   "folk": "upright", "blues": "electric", "reggae": "electric",
                   "disco": "electric", "synthwave": "synth"}.get(g, "synth")
        return _first(words, ((("acid", "303", "squelchy", "squelch", "resonant"), "acid"),
                              (("808",), "808"),
                              (("reese", "wobble", "growl", "growling", "neuro"), "reese"),
                              (("uprightbass", "upright", "jazz", "walking"), "upright"),
                              (("electric", "finger", "fingered", "slap", "funk", "funky",
                                "picked", "fretless"), "electric"),
                              (("sub", "subbass", "subby"), "sub"),
                              (("synth", "analog", "moog", "analogue"), "synth")), default)
    if role == "pads":
        return _first(words, ((("choir", "vocal", "voices", "ahh", "ooh", "aah"), "choir"),
                              (("glass", "glassy", "shimmer", "shimmering", "crystal"), "glass"),
                              ), "analog")
    if role == "piano":
        return _first(words, ((("epiano", "rhodes", "wurlitzer", "electric"), "epiano"),),
                      "epiano" if g in ("lofi", "rnb", "deephouse", "downtempo") else "grand")
    if role == "lead":
        return _first(words, ((("plucked", "pluck", "plucky"), "pluck"),
                              (("square", "chiptune", "chip", "retro", "gameboy"), "square"),
                              (("flute", "whistle", "breathy", "pan"), "flute"),
                              (("sax", "saxophone"), "sax"),
                              (("sine", "soft", "pure", "gentle"), "soft")), "saw")
    if role == "guitar":
        return _first(words, ((("distorted", "overdriven", "crunchy", "heavy", "metal",
                                "fuzz", "fuzzy", "grungy"), "distorted"),
                              (("acoustic", "nylon", "folk", "fingerpicked", "classical",
                                "steel"), "acoustic")),
                      "distorted" if g in ("metal", "punk") else
                      "acoustic" if g in ("folk", "country") else "clean")
    if role == "strings":
        return _first(words, ((("pizzicato", "pizz", "plucked"), "pizzicato"),), "ensemble")
    if role == "brass":
        return _first(words, ((("synth", "analog", "synthbrass"), "synthbrass"),), "section")
    if role == "organ":
        return _first(words, ((("pipeorgan", "church", "cathedral"), "pipe"),), "drawbar")
    if role == "bells":
        return _first(words, ((("marimba", "xylophone", "kalimba", "vibraphone", "vibes",
                                "mallet", "mallets"), "mallet"),
                              (("musicbox", "celesta", "glockenspiel", "toy"), "glock")), "fm")
    if role == "pluck":
        return _first(words, ((("harp", "koto", "acoustic"), "harp"),), "synth")
    return "default"


def choose_style(prompt: str, *, name: str = "", style: str | None = None,
                 genre: Genre | None = None, taken: tuple[str, ...] = ()) -> StemStyle:
    """Read one stem's prompt (and its name, and the shared style) into a :class:`StemStyle`.

    Parameters
    ----------
    prompt : str
        The stem's own prompt, e.g. ``"deep rolling acid bassline"``.
    name : str
        The stem's name; used when the prompt names no instrument (``"drums"`` -> drums).
    style : str, optional
        The song's shared style; it colours the sound (``"hip hop"`` bass -> an 808) but never
        picks the instrument.
    genre : Genre, optional
        The song's genre (:func:`genre_of` of the style when omitted).
    taken : tuple of str
        Roles already given to other stems; a prompt that names no instrument gets the first of
        :data:`DEFAULT_ROLE_ORDER` not in it.

    Examples
    --------
    >>> choose_style("deep rolling acid bassline").role
    'bass'
    >>> choose_style("hypnotic plucked synth lead melody").sound
    'pluck'
    """
    genre = genre or genre_of(style, prompt)
    words = tokens(prompt)
    role = _role_from(words)
    matched = role is not None
    if role is None:
        role = _role_from(tokens(name.replace("_", " ").replace("-", " ")))
    if role is None:
        role = next((r for r in DEFAULT_ROLE_ORDER if r not in taken), "lead")
    wordset = set(words)
    style_words = set(tokens(style))
    texture = _DEFAULT_TEXTURE[role]
    for word in words:  # the last texture word wins, as for roles
        if word in _TEXTURE_WORDS:
            texture = _TEXTURE_WORDS[word]
    allowed = _ALLOWED_TEXTURES.get(role)
    if allowed is not None and texture not in allowed:
        texture = _DEFAULT_TEXTURE[role]
    if texture == "strum" and role != "guitar":  # only guitars strum; the rest comp
        texture = "comp"
    density = genre.density + sum(w in _BUSY for w in wordset) - sum(w in _SPARSE for w in wordset)
    density = int(min(2, max(0, density)))
    bright = 0.5 * (sum(w in _BRIGHT for w in wordset) - sum(w in _DARK for w in wordset))
    bright += 0.25 * (sum(w in _BRIGHT for w in style_words) - sum(w in _DARK for w in style_words))
    register = int(any(w in _HIGH for w in wordset)) - int(
        any(w in _LOW for w in wordset) and role not in ("bass", "drums"))
    sound = _sound(role, wordset | ({"acid"} if "acid" in style_words and role == "bass"
                                    else set()), genre)
    return StemStyle(role=role, sound=sound, texture=texture, density=density,
                     brightness=float(min(1.0, max(-1.0, bright))), register=register,
                     hypnotic=bool(wordset & _HYPNOTIC) or genre.harmony == "loop",
                     movement=bool(wordset & _MOVEMENT), matched=matched)
