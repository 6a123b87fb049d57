#!/usr/bin/python3
"""Rewrites the JCEKS key entries of a keystore with another PBE iteration count (Java's keytool
writes 200,000; it cannot go under 10,000). Used once to make the fuzz seed
tests/fuzz/corpus/jks/key_iter16.jceks from key.jceks: the fuzzer skips decrypting keys with more
than 1,024 iterations (see fuzz_jks.c), so this seed keeps the decrypt path in reach.
Usage: jceks_iter.py IN OUT ITER [STOREPASS KEYPASS]   (defaults changeit keypass1)"""
import hashlib
import struct
import sys

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes




def der_len(n):
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def tlv(tag, body):
    return bytes([tag]) + der_len(len(body)) + body


def read_tlv(b, off):
    tag, n = b[off], b[off + 1]
    off += 2
    if n & 0x80:
        k = n & 0x7F
        n = int.from_bytes(b[off:off + k], "big")
        off += k
    return tag, b[off:off + n], off + n


def derive(salt, password, iterations):
    if salt[:4] == salt[4:]:
        salt = salt[:4][::-1] + salt[4:]
    out = b""
    for half in (salt[:4], salt[4:]):
        d = half
        for _ in range(iterations):
            d = hashlib.md5(d + password).digest()
        out += d
    return out[:24], out[24:32]


def rewrite_key(epki, keypass, iterations):
    _, seq, _ = read_tlv(epki, 0)
    _, alg, off = read_tlv(seq, 0)
    _, enc, _ = read_tlv(seq, off)
    _, oid, aoff = read_tlv(alg, 0)
    _, params, _ = read_tlv(alg, aoff)
    _, salt, poff = read_tlv(params, 0)
    _, it, _ = read_tlv(params, poff)
    key, iv = derive(salt, keypass, int.from_bytes(it, "big"))
    dec = Cipher(algorithms.TripleDES(key), modes.CBC(iv)).decryptor()
    plain = dec.update(enc) + dec.finalize()
    key, iv = derive(salt, keypass, iterations)
    enc2 = Cipher(algorithms.TripleDES(key), modes.CBC(iv)).encryptor()
    ct = enc2.update(plain) + enc2.finalize()
    itb = iterations.to_bytes((iterations.bit_length() + 8) // 8, "big")
    params = tlv(0x30, tlv(0x04, salt) + tlv(0x02, itb))
    return tlv(0x30, tlv(0x30, tlv(0x06, oid) + params) + tlv(0x04, ct))


def main():
    src, dst, iterations = sys.argv[1], sys.argv[2], int(sys.argv[3])
    storepass = (sys.argv[4] if len(sys.argv) > 4 else "changeit")
    keypass = (sys.argv[5] if len(sys.argv) > 5 else "keypass1").encode()
    b = open(src, "rb").read()
    magic, version, count = struct.unpack(">III", b[:12])
    assert magic == 0xCECECECE, "not a JCEKS file"
    out, off = bytearray(b[:12]), 12
    for _ in range(count):
        tag = struct.unpack(">I", b[off:off + 4])[0]
        alen = struct.unpack(">H", b[off + 4:off + 6])[0]
        head = b[off:off + 6 + alen + 8]
        off += 6 + alen + 8
        out += head
        if tag == 1:
            klen = struct.unpack(">I", b[off:off + 4])[0]
            key = rewrite_key(b[off + 4:off + 4 + klen], keypass, iterations)
            out += struct.pack(">I", len(key)) + key
            off += 4 + klen
            n = struct.unpack(">I", b[off:off + 4])[0]
            out += b[off:off + 4]
            off += 4
        else:
            assert tag == 2, "only key and certificate entries"
            n = 1
        for _ in range(n):
            tlen = struct.unpack(">H", b[off:off + 2])[0]
            clen = struct.unpack(">I", b[off + 2 + tlen:off + 6 + tlen])[0]
            out += b[off:off + 6 + tlen + clen]
            off += 6 + tlen + clen
    pw = storepass.encode("utf-16-be")
    out += hashlib.sha1(pw + b"Mighty Aphrodite" + bytes(out)).digest()
    open(dst, "wb").write(out)


if __name__ == "__main__":
    main()
