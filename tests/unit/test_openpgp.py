"""OpenPGP key checks on real gpg output (keys generated with GnuPG 2.2 for these tests)."""

from __future__ import annotations

import hashlib

import pytest

from lpfleet.openpgp import OpenPGPError, check_key, dearmor, normalize_fingerprint, primary_fingerprints

# RSA 2048 primary with an RSA signing subkey (like NVIDIA's key: RSA, subkeys), and an Ed25519 key.
RSA_ASC = """-----BEGIN PGP PUBLIC KEY BLOCK-----

mQENBGsIrhMBCADSld28idgpDJvdqT+DQqy4x7uynl4nVLURcXLaePdhwErcniTn
hY7UZbJs1Iy3FKR6zJ9TxWCmTPMEwuNZmMba8VRnMZjtqmmhWymYlETGFQ+NLWn8
KVTWcWzR1Su9viIPA87AEIgvOPbrdcGA67dn2b/p9K0xhbwY+sZvp/Rpb1fsMOms
PyGN0sB+z1VpwM8ZBQ/hloT1ikop2kiVO1T9WwqwHTeTpR9BH+4qNJ+ZLNo+DHCG
w7XzQLklvx9wGFDatjq/dAdFnRpRwSTubtATwq5jZq33kln9MHbUk3fJTjmBYEeJ
eOO+lIsx3fPjaWkgMjemOoG4H0sRWZFbW1F9ABEBAAG0G3JzYSB0ZXN0IDxyc2FA
dGVzdC5pbnZhbGlkPokBTgQTAQoAOBYhBHcMqhN4bWxNHWaYi0MDBO3dYZGYBQJr
CK4TAhsDBQsJCAcCBhUKCQgLAgQWAgMBAh4BAheAAAoJEEMDBO3dYZGYEJIH/i/h
7djIx3HfmBk9yBHU5Zbiibk+m1/uA+VEVvTkNNNMsum3+g6qzuUQ1bqeb1Vsa///
gsS6rXe2U28KNHMaVAl4qmtTKEWUmPt+rTBMwLqIMVidIKgb2vGApPYBUwpYo5xR
NTFARhm4d/+nHO9g1wHRq6WGucgHXucfZVdA7ZD1f/i8lPQ+E2NvW3L95wfEB36u
h3ataaRLBqDroecD5HuN37rNDGCW1sL9eqcs2A8vtgTwRz9z29fD9VW52Y8QhYMf
8EZrt6qqoTNTczWdYW39AL4EwtXnXqhiYfyaKufwjrM+JDFjaGsAap4pyWd0FhuV
bN0edOpVbvpGiYBJwpG5AQ0EawiuEwEIAMinxcoAzYX6kbeHmDJjI0TO/Kd8RgxU
30rvS31AdoaHNwluvm+JyAc3hhoUZR+9KSC4ZoC31zPBMWkL1wi4DSN+y75RKDsg
yhFOcM1hghLRazyPeRZP1UAwBsTZvwoDdfE9GGk6XBr3I2UqyuXWF8lr/NyF/gWh
pmlHpweNoZJm8SogrUm8R9RAmrC/xxummo9fwkW8/VUvdhlGdGG14r6IHBnvYAys
sQDK93PAwZ99vHRqmDrankRiRmK+uvSmxELBFThIEswJtkSoqCX1yxAmvYeErHTN
TvSpDABiqnA4QTUQkuJdudRGgRz6fqWu2ti/3Ag2rphi6NQVW1bdYTEAEQEAAYkC
bAQYAQoAIBYhBHcMqhN4bWxNHWaYi0MDBO3dYZGYBQJrCK4TAhsCAUAJEEMDBO3d
YZGYwHQgBBkBCgAdFiEEd1gLBV8CQa0bs5qE1RyxvMKWQw4FAmsIrhMACgkQ1Ryx
vMKWQw6Nhgf/eIJxmen2bwiOVDd0MTZ0swhO5PMdMJuRQ++uuAfCpA6qWnCYL4iN
Elb1OXXWD75hdUbhZ1HIyBc3/NekpLp82fZDdf4SXrMwbw+w50prfOLy3mp5IYM3
gbhMwN1pJ3kyck38xo1Q1k+eAn6RjCF3iL/ehg6lGOxjepSAI4kYobaBO8528Q25
vK/7errD6lgrZTBFBOvp3nfb4qrmfJt4N6OPPUXAjdhEIh3vrFRPXA0Ue1eancia
s8kBZ/9lAdsZkL0ETo1THhf7irryImMYW74xb0R5DhJIohM8rILxFqHT+PB89kCJ
ygZyDeSQwQ3JHlOKOBWpSxiVecZzDVKKOFThB/4/agDcXV2Fp5k9qKcJebo1KPvo
E4njBvutL2MajDrYoOl/1Z+20JKQqjpKqGE0KQfW+L1q/o/huNeZnUI3XxLBaAJn
SW2djzp8tpn/1LKXGWKA75lSswoe1tkUwbLMvdZwPzLG/sdiWWnB2kQDqMF66IM8
UvVKYWwvaa0QX9hlhpDePGPTSmxClLvShUrLg7p/3SgvhQs/Rtea7+xq//6iBH0/
BOQzDZg+51yPmraKMdHxGXCB8BTHaKKB1zNgndAbtk0OKYr/hODSPlbTtxcJZgjN
iYwaLcQxY/9iv/f/jmNRGUAzzxDe9mpvszbqMX1Gd4O8b3rPZaiVwqDzfsq2
=uBI4
-----END PGP PUBLIC KEY BLOCK-----
"""
RSA_FPR = "770CAA13786D6C4D1D66988B430304EDDD619198"
RSA_SUBKEY_FPR = "77580B055F0241AD1BB39A84D51CB1BCC296430E"
RSA_DEARMORED_SHA256 = "a8cb5f11b177da124c55e79e454c91c8e9c1813ef6145027bc9b7c70909a6016"  # of `gpg --dearmor < rsa.asc`
ED_ASC = """-----BEGIN PGP PUBLIC KEY BLOCK-----

mDMEawiuExYJKwYBBAHaRw8BAQdAsdLGOFVZt2FI7ffNBtDRQ1dgJaGUC53Xfkva
aLiakBm0GWVkIHRlc3QgPGVkQHRlc3QuaW52YWxpZD6IkAQTFggAOBYhBG/jJsaf
WYsTzkyI1gSxFvH0ZQcxBQJrCK4TAhsDBQsJCAcCBhUKCQgLAgQWAgMBAh4BAheA
AAoJEASxFvH0ZQcxhFIBAOtGljo8aqZNhwMf7CTrjBD7SSO1CHSl+k4A1sEtHTv4
AP4l8w2bn5PGK6/pz9PNcBmDG3NU1VDtGAmHUZmqpdvnAw==
=jAg9
-----END PGP PUBLIC KEY BLOCK-----
"""
ED_FPR = "6FE326C69F598B13CE4C88D604B116F1F4650731"
ED_DEARMORED_SHA256 = "0681eebc1705f3b0bc9bb4b527937c429a5ae0c8b4dccd891650fee754f8ede9"


def test_dearmor_is_byte_for_byte_what_gpg_dearmor_writes():
    assert hashlib.sha256(dearmor(RSA_ASC.encode())).hexdigest() == RSA_DEARMORED_SHA256
    assert hashlib.sha256(dearmor(ED_ASC.encode())).hexdigest() == ED_DEARMORED_SHA256


def test_binary_keys_pass_through_dearmor():
    binary = dearmor(ED_ASC.encode())
    assert dearmor(binary) == binary


@pytest.mark.parametrize(("armored", "fingerprint"), [(RSA_ASC, RSA_FPR), (ED_ASC, ED_FPR)])
def test_primary_fingerprint_matches_gpg(armored, fingerprint):
    assert primary_fingerprints(dearmor(armored.encode())) == (fingerprint,)


def test_subkeys_are_not_primary_keys():
    assert RSA_SUBKEY_FPR not in primary_fingerprints(dearmor(RSA_ASC.encode()))


def test_pinned_key_is_accepted_and_its_keyring_bytes_returned():
    verdict = check_key(RSA_ASC.encode(), "770C AA13 786D 6C4D 1D66  988B 4303 04ED DD61 9198")
    assert verdict.ok and verdict.problem is None
    assert hashlib.sha256(verdict.dearmored).hexdigest() == RSA_DEARMORED_SHA256


def test_substituted_key_is_rejected_naming_both_fingerprints():
    verdict = check_key(ED_ASC.encode(), RSA_FPR)
    assert not verdict.ok
    assert verdict.problem == f"key fingerprint {ED_FPR} is not the pinned {RSA_FPR}"


def test_pinned_key_bundled_with_another_key_is_rejected():
    bundle = dearmor(RSA_ASC.encode()) + dearmor(ED_ASC.encode())
    verdict = check_key(bundle, RSA_FPR)
    assert not verdict.ok
    assert verdict.fingerprints == (RSA_FPR, ED_FPR)
    assert "not only the pinned one" in verdict.problem


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"<html>404 Not Found</html>", "neither an ASCII-armored nor a binary OpenPGP key"),
        (b"", "neither an ASCII-armored nor a binary OpenPGP key"),
        (RSA_ASC.encode()[:900], "no END line"),
        (RSA_ASC.replace("mQENBGsIrhMB", "mQENBGsIrhMC").encode(), "checksum mismatch"),
        (dearmor(RSA_ASC.encode())[:200], "truncated packet"),
    ],
)
def test_broken_downloads_are_rejected_with_the_reason(data, problem):
    verdict = check_key(data, RSA_FPR)
    assert not verdict.ok
    assert problem in verdict.problem


@pytest.mark.parametrize("value", ["DDCAE044F796ECB0", "not hex", "C95B321B61E88C1809C4F759DDCAE044F796ECB"])
def test_key_ids_and_junk_are_not_fingerprints(value):
    with pytest.raises(OpenPGPError, match="not a full key fingerprint"):
        normalize_fingerprint(value)


def test_fingerprint_normalisation():
    assert normalize_fingerprint("c95b 321b 61e8 8c18 09c4  f759 ddca e044 f796 ecb0") == (
        "C95B321B61E88C1809C4F759DDCAE044F796ECB0"
    )
