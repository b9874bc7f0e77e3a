"""ready_time.py BIN ADMIN_PORT ARGS... — spawn BIN ARGS, poll http://127.0.0.1:ADMIN_PORT/readyz
every millisecond, print the milliseconds from spawn to the first 200, then stop the process."""
import subprocess
import sys
import time
import urllib.request

bin_, port, args = sys.argv[1], sys.argv[2], sys.argv[3:]
t0 = time.monotonic()
proc = subprocess.Popen([bin_, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                if r.status == 200:
                    print(f"{(time.monotonic() - t0) * 1000:.1f}")
                    break
        except Exception:
            pass
        if proc.poll() is not None:
            sys.exit("tlsward exited before it was ready")
        if time.monotonic() - t0 > 20:
            sys.exit("not ready after 20 s")
        time.sleep(0.001)
finally:
    proc.terminate()
    proc.wait()
