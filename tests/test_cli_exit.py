"""The console script's exit (medcloak.cli._exit): no interpreter teardown, nothing lost."""

import subprocess
import sys
import textwrap


def _run(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True, text=True,
                          timeout=120)


def test_exit_now_keeps_status_output_and_atexit_handlers():
    out = _run("""
        import atexit, sys
        from medcloak.cli._exit import exit_now
        atexit.register(lambda: print("atexit ran"))
        sys.stdout.write("unflushed ")  # buffered when stdout is a pipe
        sys.stderr.write("to stderr")
        exit_now(3)
        print("never")
    """)
    assert out.returncode == 3
    assert out.stdout == "unflushed atexit ran\n"
    assert out.stderr == "to stderr"


def test_exit_now_waits_for_a_running_non_daemon_thread(tmp_path):
    done = tmp_path / "done"
    out = _run("""
        import pathlib, sys, threading, time
        from medcloak.cli._exit import exit_now
        def work():
            time.sleep(0.5)
            pathlib.Path(sys.argv[1]).write_text("ok")
        threading.Thread(target=work).start()
        exit_now(0)
    """, str(done))
    assert out.returncode == 0, out.stderr
    assert done.read_text() == "ok"  # os._exit would have killed the thread before it wrote


def test_exit_now_skips_the_teardown():
    # an object finalised only at interpreter teardown: a normal exit prints, exit_now does not
    code = """
        import sys
        from medcloak.cli._exit import exit_now
        class Loud:
            def __del__(self):
                print("teardown")
        keep = Loud()
        {}
    """
    assert "teardown" in _run(code.format("sys.exit(0)")).stdout
    assert "teardown" not in _run(code.format("exit_now(0)")).stdout


def test_console_script_status_and_error_line(tmp_path):
    ok = subprocess.run([sys.executable, "-m", "medcloak", "--version"], capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.startswith("medcloak ")
    bad = subprocess.run([sys.executable, "-m", "medcloak", "obfuscate", str(tmp_path / "missing"), str(tmp_path / "o"),
                          "--key", str(tmp_path / "nokey")], capture_output=True, text=True)
    assert bad.returncode == 2 and "error:" in bad.stderr


def test_importing_one_io_module_does_not_import_pydicom():
    out = _run("""
        import sys
        import medcloak.io.limits, medcloak.io.load, medcloak.io.images
        print("pydicom" in sys.modules)
        from medcloak.io import UIDMapper, read_frames  # the package's names still load on demand
        import medcloak.io as io
        print("pydicom" in sys.modules, callable(read_frames), "write_dicom" in dir(io))
        try:
            io.not_a_name
        except AttributeError as exc:
            print("AttributeError", exc)
    """)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["False", "True True True",
                                       "AttributeError module 'medcloak.io' has no attribute 'not_a_name'"]
