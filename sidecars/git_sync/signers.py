"""Setting up ``--verify-signatures``: the ``--allowed-signers-file`` is either an SSH
allowed-signers file (``ssh-keygen -Y`` format) or an OpenPGP public keyring (armored or binary),
which is imported into a private GNUPGHOME so the user's and the image's keyrings play no part."""

from __future__ import annotations

import subprocess
from pathlib import Path

from sidecars.git_sync.flags import ConfigError
from sidecars.git_sync.sync import Verification


def is_openpgp(data: bytes) -> bool:
    # Armored keys start with the armor header; binary OpenPGP packets have the high bit set.
    return data.lstrip().startswith(b"-----BEGIN PGP") or (bool(data) and data[0] & 0x80 != 0)


def prepare(signers_file: Path, private_dir: Path) -> Verification:
    try:
        data = signers_file.read_bytes()
    except OSError as err:
        raise ConfigError(f"invalid flag: can't read --allowed-signers-file: {err}") from None
    if not is_openpgp(data):
        return Verification(allowed_signers_file=signers_file)
    home = private_dir / "gnupg"
    home.mkdir(mode=0o700, exist_ok=True)
    try:
        subprocess.run(
            ["gpg", "--batch", "--quiet", "--homedir", str(home), "--import", str(signers_file)],
            capture_output=True,
            check=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError) as err:
        raise ConfigError(f"invalid flag: can't import the OpenPGP keyring: {err}") from None
    return Verification(gnupg_home=home)
