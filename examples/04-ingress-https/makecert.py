"""Make a self-signed certificate for blue.localhost and green.localhost:
writes colours.crt and colours.key to the current directory (or to DIR).

    python makecert.py [DIR]

It needs the `cryptography` package, which kubemu installs. `openssl req -x509`
does the same job if you prefer it.
"""

import datetime
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

HOSTS = ["blue.localhost", "green.localhost"]


def main() -> None:
    where = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOSTS[0])])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h in HOSTS]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    (where / "colours.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (where / "colours.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    print(f"wrote {where / 'colours.crt'} and {where / 'colours.key'} for {', '.join(HOSTS)}")


if __name__ == "__main__":
    main()
