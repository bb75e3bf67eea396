#!/usr/bin/env python3
"""Streams a completion from a running tierserve to the terminal.

    bash proto/gen_python.sh                 # once: stubs into examples/tierserve/v1/
    /usr/bin/python3 examples/stream_client.py --chat "What is the capital of France?"

Uses /usr/bin/python3 (Debian's python3-grpcio and python3-protobuf).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import grpc  # noqa: E402
from tierserve.v1 import generation_pb2 as pb, generation_pb2_grpc as pb_grpc  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("prompt")
    p.add_argument("--server", default="127.0.0.1:50051")
    p.add_argument("--model", default="smollm2")
    p.add_argument("--chat", action="store_true", help="send the prompt as a user chat message")
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--seed", type=int)
    args = p.parse_args()

    prompt = (pb.Prompt(chat=pb.Chat(messages=[pb.ChatMessage(role="user", content=args.prompt)]))
              if args.chat else pb.Prompt(text=args.prompt))
    params = pb.GenerationParameters(max_new_tokens=args.max_new_tokens, temperature=args.temperature)
    if args.seed is not None:
        params.seed = args.seed
    with grpc.insecure_channel(args.server) as channel:
        stub = pb_grpc.GenerationStub(channel)
        try:
            for msg in stub.GenerateStream(pb.GenerateStreamRequest(model=args.model, prompt=prompt,
                                                                    parameters=params), timeout=300):
                sys.stdout.write(msg.text)
                sys.stdout.flush()
                if msg.finish_reason:
                    print(f"\n[{pb.FinishReason.Name(msg.finish_reason)}: {msg.usage.prompt_tokens} prompt"
                          f" + {msg.usage.completion_tokens} generated tokens]", file=sys.stderr)
        except grpc.RpcError as e:
            print(f"\nerror: {e.code().name}: {e.details()}", file=sys.stderr)
            sys.exit(1)


if __name__ == "__main__":
    main()
