"""weak_server.py — a deliberately weak TLS server for the scanner's tests (tlslite-ng, pure
Python): the protocols and suites Debian's OpenSSL 3 no longer has (SSLv3, RC4, 3DES), and the
misbehaviours OpenSSL never shows (ignoring TLS_FALLBACK_SCSV, no secure renegotiation).

usage: weak_server.py PORT CERT_PEM KEY_PEM --versions ssl3,tls1.0,tls1.1,tls1.2
                      --ciphers rc4,3des,aes128,aes128gcm,... [--kex rsa,ecdhe_rsa,dhe_rsa]
                      [--ignore-scsv] [--no-reneg] [--dh-params RFC2409_GROUP2] [--curves a,b]
                      [--hsts VALUE] [--stall-after-handshake]
Listens on 127.0.0.1:PORT, prints "ready", answers each handshake with an HTTP response (with
Strict-Transport-Security: VALUE when given; after reading the request) then closes; or, with
--stall-after-handshake, completes the handshake and then neither reads nor writes. Test-only.
"""
import argparse
import socket
import sys
import threading
import time

from tlslite.api import HandshakeSettings, TLSConnection, X509CertChain, parsePEMKey
from tlslite.constants import CipherSuite, ExtensionType

VERSIONS = {"ssl3": (3, 0), "tls1.0": (3, 1), "tls1.1": (3, 2), "tls1.2": (3, 3)}

p = argparse.ArgumentParser()
p.add_argument("port", type=int)
p.add_argument("cert")
p.add_argument("key")
p.add_argument("--versions", required=True)
p.add_argument("--ciphers", required=True)
p.add_argument("--kex", default="rsa")
p.add_argument("--ignore-scsv", action="store_true")
p.add_argument("--no-reneg", action="store_true")
p.add_argument("--dh-params", help="a named DH group of tlslite.mathtls, e.g. RFC2409_GROUP2 (1024 bits)")
p.add_argument("--curves", help="ECDH curves, e.g. secp384r1,x25519")
p.add_argument("--no-downgrade-marker", action="store_true",
               help="do not mark an older version's ServerHello random with DOWNGRD (RFC 8446 4.1.3)")
p.add_argument("--hsts", help="send Strict-Transport-Security: HSTS in the HTTP answer")
p.add_argument("--stall-after-handshake", action="store_true")
a = p.parse_args()

if a.ignore_scsv:
    # tlslite refuses a fallback when TLS_FALLBACK_SCSV is offered; an id no client sends
    # turns that check off.
    CipherSuite.TLS_FALLBACK_SCSV = 0xFEFE
if a.no_reneg:
    # Neither the extension nor the SCSV is recognised, so renegotiation_info is never sent.
    ExtensionType.renegotiation_info = 0xFEFD
    CipherSuite.TLS_EMPTY_RENEGOTIATION_INFO_SCSV = 0xFEFC

if a.no_downgrade_marker:
    import tlslite.tlsconnection as tc
    tc.TLS_1_1_DOWNGRADE_SENTINEL = bytearray(b"NOMARKER")
    tc.TLS_1_2_DOWNGRADE_SENTINEL = bytearray(b"NOMARKER")

versions = sorted(VERSIONS[v] for v in a.versions.split(","))
settings = HandshakeSettings()
settings.minVersion, settings.maxVersion = versions[0], versions[-1]
settings.cipherNames = a.ciphers.split(",")
settings.keyExchangeNames = a.kex.split(",")
settings.macNames = ["sha", "sha256", "sha384", "aead", "md5"]
if a.dh_params:
    from tlslite import mathtls
    settings.dhParams = getattr(mathtls, a.dh_params)
if a.curves:
    settings.eccCurves = a.curves.split(",")
chain = X509CertChain()
chain.parsePemList(open(a.cert).read())
key = parsePEMKey(open(a.key).read(), private=True)


def handle(sock):
    try:
        conn = TLSConnection(sock)
        # Anonymous key exchange (dh_anon, ecdh_anon) is asked for explicitly, without a
        # certificate (tlslite then offers only the anonymous suites).
        if any(k.endswith("_anon") for k in settings.keyExchangeNames):
            conn.handshakeServer(settings=settings, anon=True)
        else:
            conn.handshakeServer(certChain=chain, privateKey=key, settings=settings)
        if a.stall_after_handshake:
            time.sleep(3600)
        if a.hsts:
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = conn.read(max=4096)
                if not chunk:
                    break
                request += bytes(chunk)
            conn.write(b"HTTP/1.1 200 OK\r\nStrict-Transport-Security: " + a.hsts.encode()
                       + b"\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        else:
            conn.write(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
        conn.close()
    except Exception:
        pass
    finally:
        sock.close()


srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", a.port))
srv.listen(64)
print("ready", flush=True)
while True:
    s, _ = srv.accept()
    threading.Thread(target=handle, args=(s,), daemon=True).start()
