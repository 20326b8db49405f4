"""A TLS front for the helper benchmark: terminates TLS on ADDR:PORT with CERT/KEY and forwards
the bytes to a plain-HTTP upstream, so a client that insists on AWS's real HTTPS endpoint name
(docker-credential-ecr-login ignores AWS_ENDPOINT_URL*) reaches the ECR-API fixture.

Usage: python3 tls_front.py ADDR PORT CERT KEY UPSTREAM_HOST UPSTREAM_PORT
"""
import asyncio
import ssl
import sys


async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def main():
    addr, port, cert, key, up_host, up_port = sys.argv[1:7]
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)

    async def handle(client_reader, client_writer):
        try:
            up_reader, up_writer = await asyncio.open_connection(up_host, int(up_port))
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(pipe(client_reader, up_writer), pipe(up_reader, client_writer))

    server = await asyncio.start_server(handle, addr, int(port), ssl=context)
    async with server:
        await server.serve_forever()


asyncio.run(main())
