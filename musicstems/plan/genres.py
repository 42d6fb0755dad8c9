"""Genres: the habits of a style (tempo, drum family, harmony, swing), and the mood of a text.

:func:`genre_of` reads the style (then the prompts) with the vocabulary of
:mod:`musicstems.plan.words`; :func:`mood_mode` gives the mode that mood words ask for.
"""

from __future__ import annotations

from dataclasses import dataclass

from .words import MAJOR_WORDS, MINOR_WORDS, tokens

__all__ = ["Genre", "GENRES", "genre_of", "mood_mode"]


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


# One row per genre; the columns are the fields of Genre above, in order.
GENRES: dict[str, Genre] = {g.name: g for g in (
    #     name         bpm  drums        harmony      mode     swing bars/chord density 7ths
    Genre("techno",    128, "fourfloor", "loop",      "minor", 0.0,  1,         1,      False),
    Genre("minimal",   125, "fourfloor", "loop",      "minor", 0.0,  1,         1,      False),
    Genre("techhouse", 125, "fourfloor", "loop",      "minor", 0.08, 1,         1,      False),
    Genre("deephouse", 122, "fourfloor", "jazz",      "minor", 0.1,  1,         1,      True),
    Genre("house",     124, "fourfloor", "pop",       None,    0.08, 1,         1,      True),
    Genre("trance",    138, "fourfloor", "pop",       "minor", 0.0,  1,         2,      False),
    Genre("edm",       128, "fourfloor", "pop",       None,    0.0,  1,         1,      False),
    Genre("disco",     118, "fourfloor", "pop",       "major", 0.0,  1,         2,      True),
    Genre("electro",   126, "breakbeat", "loop",      "minor", 0.0,  1,         1,      False),
    Genre("synthwave", 100, "backbeat",  "pop",       "minor", 0.0,  1,         1,      False),
    Genre("dnb",       174, "breakbeat", "cinematic", "minor", 0.0,  2,         2,      False),
    Genre("jungle",    170, "breakbeat", "loop",      "minor", 0.0,  2,         2,      False),
    Genre("dubstep",   140, "trap",      "loop",      "minor", 0.0,  2,         1,      False),
    Genre("trap",      140, "trap",      "loop",      "minor", 0.0,  2,         1,      False),
    Genre("lofi",      80,  "hiphop",    "jazz",      None,    0.25, 1,         0,      True),
    Genre("hiphop",    90,  "hiphop",    "loop",      "minor", 0.15, 1,         1,      False),
    Genre("rnb",       92,  "hiphop",    "jazz",      None,    0.15, 1,         1,      True),
    Genre("funk",      105, "backbeat",  "loop",      None,    0.12, 1,         2,      True),
    Genre("jazz",      120, "jazz",      "jazz",      None,    0.33, 1,         1,      True),
    Genre("blues",     96,  "backbeat",  "pop",       "major", 0.3,  1,         1,      True),
    Genre("rock",      120, "backbeat",  "pop",       None,    0.0,  1,         1,      False),
    Genre("metal",     140, "backbeat",  "loop",      "minor", 0.0,  1,         2,      False),
    Genre("punk",      170, "backbeat",  "pop",       "major", 0.0,  1,         2,      False),
    Genre("pop",       112, "backbeat",  "pop",       "major", 0.0,  1,         1,      False),
    Genre("country",   110, "backbeat",  "pop",       "major", 0.0,  1,         1,      False),
    Genre("folk",      100, "backbeat",  "pop",       "major", 0.0,  1,         0,      False),
    Genre("reggae",    75,  "hiphop",    "pop",       "major", 0.1,  1,         1,      False),
    Genre("ambient",   80,  "ambient",   "cinematic", None,    0.0,  2,         0,      False),
    Genre("downtempo", 95,  "hiphop",    "jazz",      None,    0.1,  1,         0,      True),
    Genre("cinematic", 90,  "ambient",   "cinematic", "minor", 0.0,  2,         0,      False),
    Genre("classical", 100, "ambient",   "pop",       None,    0.0,  1,         0,      False),
    Genre("default",   120, "backbeat",  "pop",       None,    0.0,  1,         1,      False),
)}
# words in a style -> genre name; the first listed word found in the text wins
GENRE_WORDS = (
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


def genre_of(*texts: str | None) -> Genre:
    """The genre named in the first of ``texts`` that names one (the style, then prompts), or
    the ``"default"`` genre (120 bpm, backbeat, pop harmony)."""
    for text in texts:
        words = set(tokens(text))
        for word, name in GENRE_WORDS:
            if word in words:
                return GENRES[name]
    return GENRES["default"]


def mood_mode(*texts: str | None) -> str | None:
    """``"minor"`` or ``"major"`` when the texts carry a mood word (dark, happy ...), else None."""
    score = 0
    for text in texts:
        for word in tokens(text):
            score += (word in MAJOR_WORDS) - (word in MINOR_WORDS)
    return None if score == 0 else ("major" if score > 0 else "minor")
