"""The song's shared musical plan: tempo, key, meter, chords, form, and every stem's notes.

``make_plan(spec)`` turns a validated song spec into a :class:`Plan`; both backends get it (the
sketch backend renders its notes, MusicGen uses its tempo and key). The modules, in the order
a plan is made:

- :mod:`.roles`: prompt and style -> genre, then per stem a
  :class:`~musicstems.plan.roles.StemStyle` (role, sound, texture, feel);
- :mod:`.harmony`: diatonic chords, progressions, voicings and the song form;
- :mod:`.parts`: every stem's notes on one tick grid;
- :mod:`.song`: :class:`Plan`, :class:`Part` and :func:`make_plan`, which run the above;
- :mod:`.midi`: a plan as a Standard MIDI File.
"""

from .song import PLAN_FORMAT, Part, Plan, make_plan

__all__ = ["Plan", "Part", "make_plan", "PLAN_FORMAT"]
