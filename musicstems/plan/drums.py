"""Drum parts: a 16-step pattern per drum family, thinned in quiet sections, a crash at each
loud section's downbeat and a snare fill before it. Drums use General MIDI percussion keys.
"""

from __future__ import annotations

import numpy as np

from .roles import StemStyle
from .score import STEP, Note, Score, humanize, tick_at

__all__ = ["DRUM_KEYS", "DRUM_PATTERNS", "HIT_VELOCITY", "write_drums"]

# General MIDI percussion keys (channel 10)
DRUM_KEYS = {"kick": 36, "rim": 37, "snare": 38, "clap": 39, "closed_hat": 42, "pedal_hat": 44,
             "open_hat": 46, "low_tom": 45, "mid_tom": 47, "high_tom": 50, "crash": 49,
             "ride": 51, "shaker": 70}

# Legend of a drum pattern: one character per 16th step, 16 to the bar (the beats are steps 0,
# 4, 8 and 12). A character is a hit and its strength (its base MIDI velocity, HIT_VELOCITY),
# or a rest:
#   X  accent (118)     x  hit (96)     o  ghost note (62)     .  rest
HIT_VELOCITY = {"X": 118, "x": 96, "o": 62}

# drum family (Genre.drums) -> voice (a DRUM_KEYS name) -> three patterns, for the stem's
# density 0 (sparse), 1 (medium) and 2 (busy)
DRUM_PATTERNS: dict[str, dict[str, tuple[str, str, str]]] = {
    "fourfloor": {"kick": ("X...X...X...X...",) * 3,
                  "clap": ("....x.......x...",) * 3,
                  "closed_hat": ("..x...x...x...x.", "o.x.o.x.o.x.o.x.", "oox.oox.oox.oox."),
                  "open_hat": ("................", "................", "..o...o...o...o.")},
    "backbeat": {"kick": ("X.......X.......", "X.......X.x.....", "X.....x.X.x....."),
                 "snare": ("....X.......X...",) * 3,
                 "closed_hat": ("x...x...x...x...", "x.o.x.o.x.o.x.o.", "xoxoxoxoxoxoxoxo")},
    "hiphop": {"kick": ("X.........X.....", "X......x..X.....", "X..x...x..X..x..",),
               "snare": ("....X.......X...",) * 3,
               "closed_hat": ("x...x...x...x...", "x.x.x.x.x.x.x.x.", "x.xox.xox.xox.xo")},
    "trap": {"kick": ("X.........x.....", "X.....x...x.....", "X.....x...x..x..",),
             "clap": ("........X.......",) * 3,
             "closed_hat": ("x.x.x.x.x.x.x.x.", "xoxoxoxoxoxoxoxo", "xoxoxoxoxoxoxxxx")},
    "breakbeat": {"kick": ("X.........x.....", "X.........x.....", "X.x.......x....."),
                  "snare": ("....X.......X...", "....X..o.o..X...", "....X..o.o..X..o"),
                  "closed_hat": ("x.x.x.x.x.x.x.x.", "x.x.x.x.x.x.x.x.", "xoxoxoxoxoxoxoxo")},
    "ambient": {"kick": ("X...............", "X.........x.....", "X.........x.....",),
                "rim": ("........o.......", "........x.......", "....x.......x..."),
                "shaker": ("o...o...o...o...", "o.o.o.o.o.o.o.o.", "oooooooooooooooo")},
    "jazz": {"ride": ("x...x.x.x...x.x.",) * 3,
             "pedal_hat": ("....x.......x...",) * 3,
             "kick": ("o...............", "o.......o.......", "o.....o.o.......")},
}


def write_drums(style: StemStyle, score: Score, rng: np.random.Generator) -> list[Note]:
    family = DRUM_PATTERNS[score.genre.drums]
    density = style.density
    notes: list[Note] = []
    for bar in range(score.num_bars):
        section = score.section_of(bar)
        energy = section.energy
        quiet = energy < 0.6
        for voice, patterns in family.items():
            pattern = patterns[density]
            if quiet and voice in ("clap", "snare") and score.genre.drums == "fourfloor":
                continue  # electronic intros and outros: kick and hats only
            if section.name == "break" and voice == "kick":
                continue
            if voice == "open_hat" and energy < 1.0:
                continue
            for step, char in enumerate(pattern):
                if char == ".":
                    continue
                notes.append(Note(tick_at(score, bar, step), STEP,
                                  DRUM_KEYS[voice], humanize(HIT_VELOCITY[char], energy, rng)))
        is_last = bar == section.end_bar - 1
        following = next((s for s in score.sections if s.start_bar == section.end_bar), None)
        if is_last and following is not None and following.energy > energy:
            # a fill: 16th snares rising into the louder section
            fill_voice = "rim" if score.genre.drums == "ambient" else "snare"
            for step in range(12, 16):
                notes.append(Note(tick_at(score, bar, step), STEP, DRUM_KEYS[fill_voice],
                                  humanize(70 + 12 * (step - 12), 1.0, rng, 3.0)))
        if bar == section.start_bar and bar > 0 and energy >= 0.7:
            notes.append(Note(tick_at(score, bar, 0), 4 * STEP, DRUM_KEYS["crash"],
                              humanize(100, energy, rng)))
    return notes

