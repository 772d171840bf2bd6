"""Recordings made elsewhere (kiwirecorder IQ WAV, SigMF) imported as acquisitions.

The readers (``kiwi_wav``, ``sigmf_reader``, ``positions``) are pure: bytes in,
captures out, a clear error per bad file. ``recordings`` turns a set of uploaded
files into captures with their stations; ``service`` and ``endpoints`` stage them
as a PENDING acquisition of kind ``import``, and ``ingest`` is the acquisition
task's step that measures and stores them in place of a recording.
"""
