#!/usr/bin/python3
"""A client no one on the team wrote: Debian's python3-grpcio with stubs generated from proto/.

Starts moke-server on 127.0.0.1 (port 0, temp data dir), waits until it serves, edits a fact with the
bearer token, asks with min_version (read-your-writes), checks that a missing token is refused, then
stops the server with SIGTERM and expects exit status 0. Exit 77 (skipped) when grpcio is missing.
"""
import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time

parser = argparse.ArgumentParser()
parser.add_argument("--server", required=True)
parser.add_argument("--stubs", required=True)
parser.add_argument("--model", required=True)
args = parser.parse_args()

try:
    import grpc
except ImportError:
    print("skipped: python3-grpcio is not installed for /usr/bin/python3")
    sys.exit(77)
sys.path.insert(0, args.stubs)
from moke.v1 import moke_pb2, moke_pb2_grpc  # noqa: E402

TOKEN = "py-token"


def main():
    with tempfile.TemporaryDirectory(prefix="moke_py_") as tmp:
        port_file = os.path.join(tmp, "ports")
        log = open(os.path.join(tmp, "server.log"), "w")
        proc = subprocess.Popen(
            [args.server, "--listen", "127.0.0.1:0", "--metrics-listen", "", "--data-dir",
             os.path.join(tmp, "data"), "--port-file", port_file, "--model", args.model],
            stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, MOKE_TOKEN=TOKEN))
        try:
            deadline = time.time() + 120
            while not os.path.exists(port_file):
                assert proc.poll() is None, "server exited early"
                assert time.time() < deadline, "no port file"
                time.sleep(0.05)
            port = int(open(port_file).read().split()[0])
            channel = grpc.insecure_channel(f"127.0.0.1:{port}")
            stub = moke_pb2_grpc.KnowledgeEditorStub(channel)
            while True:
                try:
                    if stub.GetStatus(moke_pb2.GetStatusRequest(), timeout=2).serving:
                        break
                except grpc.RpcError:
                    pass
                assert time.time() < deadline, "server never served"
                time.sleep(0.1)

            edit = stub.EditFact(
                moke_pb2.EditFactRequest(question="The capital of Zorbia is", answer="Plimtown",
                                         request_id="py-1"),
                metadata=[("authorization", "Bearer " + TOKEN)], timeout=120)
            assert edit.version == 1 and edit.edit_id == 1 and not edit.duplicate, edit
            ask = stub.Ask(moke_pb2.AskRequest(question="The capital of Zorbia is", min_version=edit.version),
                           timeout=60)
            assert ask.version >= edit.version, ask
            print(f"python client: edit -> version {edit.version}, expert {edit.expert}; "
                  f"ask -> {ask.answer!r} (version {ask.version}, expert {ask.route.expert})")
            try:
                stub.EditFact(moke_pb2.EditFactRequest(question="q", answer="a"), timeout=10)
                raise AssertionError("edit without a token was accepted")
            except grpc.RpcError as e:
                assert e.code() == grpc.StatusCode.UNAUTHENTICATED, e
            try:
                stub.Ask(moke_pb2.AskRequest(question=""), timeout=10)
                raise AssertionError("empty question was accepted")
            except grpc.RpcError as e:
                assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, e
            channel.close()
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait(timeout=60)
            assert rc == 0, f"exit status {rc}"
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log.close()
            if sys.exc_info()[0] is not None:
                sys.stdout.write(open(os.path.join(tmp, "server.log")).read())
    print("python client test passed")


main()
