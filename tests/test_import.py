import subprocess
import sys


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys\n"
                          "print(' '.join(sorted(sys.modules)))"],
                         check=True, capture_output=True, text=True).stdout
    return set(out.split())


def test_import_is_light():
    # A fresh interpreter: torch and transformers must not load with the package, nor when the
    # public names are looked up; they load when generation starts.
    modules = _modules_after("import musicstems\nfrom musicstems import compose, Stem, "
                             "Composition, MusicStemsError")
    assert "torch" not in modules
    assert "transformers" not in modules
    assert "librosa" not in modules


def test_public_names():
    import musicstems

    for name in musicstems.__all__:
        assert getattr(musicstems, name) is not None
    assert issubclass(musicstems.MusicStemsError, ValueError)
