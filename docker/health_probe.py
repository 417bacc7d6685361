#!/usr/bin/python3
"""HEALTHCHECK / probe: asks grpc.health.v1.Health/Check and exits 0 only when the answer is SERVING.

No generated stubs: HealthCheckRequest{service} and HealthCheckResponse{status} are one-field messages,
so they are encoded by hand (field 1, length-delimited string / varint enum). Needs python3-grpcio.
Usage: health_probe.py [--addr HOST:PORT] [--service NAME] [--timeout S]
The address defaults to $MOKE_LISTEN with a wildcard host (0.0.0.0, [::], empty) replaced by 127.0.0.1.
"""
import argparse
import os
import sys

import grpc

SERVING = 1
NAMES = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}


def default_addr():
    listen = os.environ.get("MOKE_LISTEN", "127.0.0.1:50051")
    host, _, port = listen.rpartition(":")
    if host in ("", "0.0.0.0", "[::]", "::"):
        host = "127.0.0.1"
    return f"{host}:{port}"


def encode_request(service):
    data = service.encode()
    if len(data) >= 128:
        raise ValueError("service name too long")
    return (b"\x0a" + bytes([len(data)]) + data) if data else b""


def decode_status(buf):
    # HealthCheckResponse: field 1 (varint) = status; an empty message means UNKNOWN (0).
    i = 0
    while i < len(buf):
        key = buf[i]
        i += 1
        if key == 0x08:
            value, shift = 0, 0
            while True:
                b = buf[i]
                i += 1
                value |= (b & 0x7F) << shift
                shift += 7
                if not b & 0x80:
                    return value
        return 0  # unexpected field: not SERVING
    return 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--addr", default=default_addr())
    p.add_argument("--service", default="")
    p.add_argument("--timeout", type=float, default=3.0)
    p.add_argument("--quiet", action="store_true")
    a = p.parse_args()
    with grpc.insecure_channel(a.addr) as channel:
        check = channel.unary_unary("/grpc.health.v1.Health/Check")  # bytes in, bytes out
        try:
            status = decode_status(check(encode_request(a.service), timeout=a.timeout))
        except grpc.RpcError as e:
            print(f"health {a.addr}: {e.code().name}: {e.details()}", file=sys.stderr)
            return 1
    if not a.quiet:
        print(f"health {a.addr}: {NAMES.get(status, status)}")
    return 0 if status == SERVING else 1


if __name__ == "__main__":
    sys.exit(main())
