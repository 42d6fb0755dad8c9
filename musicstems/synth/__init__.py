"""A small numpy synthesizer for the sketch backend: drum synthesis and instrument voices.

``dsp`` holds the building blocks (band-limited oscillators, envelopes, filters, plucked
strings, reverb, delay), ``drums`` the drum kit, ``voices`` the tonal instruments, and
``render`` lays a stem's notes out into audio.
"""
