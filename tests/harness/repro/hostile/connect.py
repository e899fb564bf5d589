"""Reach the host: with Python's socket module (the audit hook sees it) and from a child interpreter started with
-I -S (no sitecustomize, so no audit hook: only the namespaces can stop it)."""
import json
import os
import subprocess
import sys

T = json.loads(os.environ["HOSTILE"])
ATTEMPT = r'''
import json, socket, sys
kind, targets = sys.argv[1], json.loads(sys.argv[2])
for target in targets:
    try:
        if kind == "dns":
            socket.getaddrinfo(target, 80)
            print("LEAK resolved", target)
        elif kind == "udp":
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.sendto(b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com\x00\x00\x01\x00\x01",
                     tuple(target))
            print("sent", target)
        elif kind in ("unix", "abstract"):
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(2)
            s.connect(target.replace("@", "\0", 1) if kind == "abstract" else target)
            print("LEAK connected", target)
        else:
            s = socket.socket(socket.AF_INET6 if kind == "ipv6" else socket.AF_INET)
            s.settimeout(2)
            s.connect(tuple(target))
            print("LEAK connected", target)
    except OSError as exc:
        print("refused:", target, type(exc).__name__, exc)
'''
for kind, targets in T["net"]:
    args = [kind, json.dumps(targets)]
    print("python:", kind, flush=True)
    subprocess.run([sys.executable, "-c", ATTEMPT, *args], check=False)  # Python with the audit hook (sitecustomize loads)
    print("bypass:", kind, flush=True)
    subprocess.run([sys.executable, "-I", "-S", "-c", ATTEMPT, *args], check=False)  # no sitecustomize: no audit hook
