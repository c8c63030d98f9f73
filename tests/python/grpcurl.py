"""A stand-in for grpcurl, for the test that runs the README's walk-through.

grpcurl is a Go binary that no package registry this project may use ships,
so the walk-through test puts this script on PATH as `grpcurl`. It speaks
the same subset of grpcurl's command line the README uses, learns the API
the same way (server reflection, no proto files), and prints what grpcurl
prints: responses as protobuf JSON (lowerCamelCase names, defaults omitted,
two-space indent), and errors on stderr as

    ERROR:
      Code: NotFound
      Message: ...
      Details:
      1)	{"@type":"type.googleapis.com/google.rpc.ErrorInfo",...}

with exit status 64 + the gRPC code, as grpcurl does.

    grpcurl [-plaintext] [-cacert F] [-cert F] [-key F] [-H 'k: v']...
            [-d JSON] [-v] [-max-time SECONDS] ADDRESS (list [SVC] | describe SYM | SVC/METHOD)
"""

import json
import sys

import grpc
from google.protobuf import descriptor_pool, json_format, message_factory
from google.rpc import error_details_pb2, status_pb2  # noqa: F401 (registers the detail types)
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

STATUS_CODE_OFFSET = 64


def usage(message):
    print(f"grpcurl: {message}", file=sys.stderr)
    sys.exit(2)


def parse_args(argv):
    opts = {"plaintext": False, "headers": [], "data": None, "verbose": False, "max_time": None}
    rest = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        takes_value = {"-d": "data", "-H": "headers", "-cacert": "cacert", "-cert": "cert",
                       "-key": "key", "-max-time": "max_time"}
        if arg == "-plaintext":
            opts["plaintext"] = True
        elif arg == "-v":
            opts["verbose"] = True
        elif arg in takes_value:
            if i + 1 >= len(argv):
                usage(f"flag {arg} needs a value")
            name = takes_value[arg]
            if name == "headers":
                opts["headers"].append(argv[i + 1])
            else:
                opts[name] = argv[i + 1]
            i += 1
        elif arg.startswith("-"):
            usage(f"unsupported flag {arg} (this stand-in speaks only what the README uses)")
        else:
            rest.append(arg)
        i += 1
    if not rest:
        usage("no address")
    return opts, rest[0], rest[1:]


def channel_for(opts, address):
    if opts["plaintext"]:
        return grpc.insecure_channel(address)
    read = lambda path: open(path, "rb").read() if path else None  # noqa: E731
    credentials = grpc.ssl_channel_credentials(
        root_certificates=read(opts.get("cacert")),
        private_key=read(opts.get("key")),
        certificate_chain=read(opts.get("cert")),
    )
    return grpc.secure_channel(address, credentials)


def metadata_of(opts):
    metadata = []
    for header in opts["headers"]:
        name, _, value = header.partition(":")
        metadata.append((name.strip().lower(), value.strip()))
    return metadata


def print_error(error):
    code = error.code()
    print("ERROR:", file=sys.stderr)
    print(f"  Code: {''.join(w.capitalize() for w in code.name.split('_'))}", file=sys.stderr)
    print(f"  Message: {error.details()}", file=sys.stderr)
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            if status.details:
                print("  Details:", file=sys.stderr)
            for n, detail in enumerate(status.details, 1):
                rendered = json.dumps(
                    json_format.MessageToDict(detail), sort_keys=True, separators=(",", ":")
                )
                print(f"  {n})\t{rendered}", file=sys.stderr)
    sys.exit(STATUS_CODE_OFFSET + code.value[0])


def to_json(message):
    return json_format.MessageToJson(message, indent=2)


def list_services(channel, service):
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    if service:
        pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
        for method in pool.FindServiceByName(service).methods:
            print(f"{service}.{method.name}")
        return
    responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    for response in responses:
        for svc in response.list_services_response.service:
            print(svc.name)


def describe(channel, symbol):
    pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
    try:
        service = pool.FindServiceByName(symbol)
        print(f"{symbol} is a service:")
        print(f"service {service.name} {{")
        for m in service.methods:
            stream = "stream " if m.server_streaming else ""
            print(f"  rpc {m.name} ( .{m.input_type.full_name} ) returns ( {stream}.{m.output_type.full_name} );")
        print("}")
        return
    except KeyError:
        pass
    message = pool.FindMessageTypeByName(symbol)
    print(f"{symbol} is a message:")
    print(f"message {message.name} {{")
    for field in message.fields:
        print(f"  {field.name} = {field.number};")
    print("}")


def invoke(opts, channel, target):
    service_name, _, method_name = target.rpartition("/")
    if not service_name:
        service_name, _, method_name = target.rpartition(".")
    pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
    method = pool.FindServiceByName(service_name).FindMethodByName(method_name)
    request_class = message_factory.GetMessageClass(method.input_type)
    response_class = message_factory.GetMessageClass(method.output_type)
    request = json_format.Parse(opts["data"] or "{}", request_class())
    path = f"/{service_name}/{method_name}"
    timeout = float(opts["max_time"]) if opts["max_time"] else None
    metadata = metadata_of(opts)
    try:
        if method.server_streaming:
            call = channel.unary_stream(path, request_serializer=lambda m: m.SerializeToString(),
                                        response_deserializer=response_class.FromString)
            responses = call(request, metadata=metadata, timeout=timeout)
            if opts["verbose"]:
                print_headers("Response headers received:", responses.initial_metadata())
            for response in responses:
                print(to_json(response))
        else:
            call = channel.unary_unary(path, request_serializer=lambda m: m.SerializeToString(),
                                       response_deserializer=response_class.FromString)
            response, details = call.with_call(request, metadata=metadata, timeout=timeout)
            if opts["verbose"]:
                print_headers("Response headers received:", details.initial_metadata())
            print(to_json(response))
            if opts["verbose"]:
                print_headers("Response trailers received:", details.trailing_metadata())
    except grpc.RpcError as error:
        if opts["verbose"]:
            print_headers("Response trailers received:", error.trailing_metadata())
        print_error(error)


def print_headers(title, metadata):
    print(f"\n{title}")
    for key, value in metadata or ():
        if not key.endswith("-bin"):
            print(f"{key}: {value}")
    print()


def main(argv):
    opts, address, command = parse_args(argv)
    channel = channel_for(opts, address)
    if not command:
        usage("no method")
    if command[0] == "list":
        list_services(channel, command[1] if len(command) > 1 else None)
    elif command[0] == "describe":
        describe(channel, command[1])
    else:
        invoke(opts, channel, command[0])


if __name__ == "__main__":
    main(sys.argv[1:])
