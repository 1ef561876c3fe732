"""git-sync configuration: flags, env vars, deprecated names, precedence and validation, as a
user of kubernetes/git-sync v4 would write them."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecars.git_sync.config import Action, Config, GitGC, Submodules, load, redact_url
from sidecars.git_sync.duration import DurationError, format_duration, parse_duration
from sidecars.git_sync.flags import ConfigError, UsageError
from sidecars.git_sync.gitconfig import parse_git_config
from sidecars.git_sync.trigger import authorized, sign

BASE = ["--repo=https://example.com/org/site.git", "--root=/git"]


def cfg(argv: list[str], env: dict[str, str] | None = None) -> Config:
    loaded = load(argv, env or {})
    assert isinstance(loaded, Config)
    return loaded


# -- durations ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0", 0.0),
        ("100ms", 0.1),
        ("1m30s", 90.0),
        ("1.5h", 5400.0),
        ("2h45m", 9900.0),
        ("300us", 0.0003),
        ("300µs", 0.0003),
        ("10ns", 1e-8),
        ("-2s", -2.0),
        ("+3s", 3.0),
        (".5s", 0.5),
        ("1s500ms", 1.5),
    ],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "10", "1x", "s", "1.2.3s", "1 s", "ms", "--1s", "1sm"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(DurationError):
        parse_duration(text)


@given(st.integers(min_value=0, max_value=10**15))
def test_duration_format_round_trips(ns: int) -> None:
    seconds = ns / 1e9
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds, rel=1e-9, abs=1e-9)


@given(st.text(max_size=20))
def test_duration_parser_never_crashes(text: str) -> None:
    try:
        value = parse_duration(text)
    except DurationError:
        return
    assert isinstance(value, float)


# -- flags and env -----------------------------------------------------------------------------


def test_defaults_match_upstream() -> None:
    c = cfg(BASE)
    assert (c.ref, c.depth, c.period, c.sync_timeout) == ("HEAD", 1, 10.0, 120.0)
    assert c.submodules is Submodules.RECURSIVE and c.git_gc is GitGC.ALWAYS
    assert c.link == Path("/git/site.git")  # the leaf of --repo
    assert (c.max_failures, c.webhook_method, c.webhook_success_status) == (0, "POST", 200)
    assert c.exechook_timeout == 30.0 and c.webhook_timeout == 1.0


@pytest.mark.parametrize(
    ("argv", "env", "field", "expected"),
    [
        (["--period=1m30s"], {}, "period", 90.0),
        (["--period", "2s"], {}, "period", 2.0),
        ([], {"GITSYNC_PERIOD": "3s"}, "period", 3.0),
        ([], {"GIT_SYNC_PERIOD": "4s"}, "period", 4.0),
        # The deprecated env name wins over GITSYNC_* when both are set (as upstream).
        ([], {"GITSYNC_PERIOD": "3s", "GIT_SYNC_PERIOD": "4s"}, "period", 4.0),
        # A flag beats any env var.
        (["--period=5s"], {"GITSYNC_PERIOD": "3s"}, "period", 5.0),
        (["--wait=1.5"], {}, "period", 1.5),
        ([], {"GIT_SYNC_WAIT": "2"}, "period", 2.0),
        (["--branch=dev"], {}, "ref", "dev"),
        (["--rev=v1"], {}, "ref", "v1"),
        (["--branch=dev", "--rev=HEAD"], {}, "ref", "dev"),
        ([], {"GIT_SYNC_BRANCH": "dev"}, "ref", "dev"),
        (["--ref=v2"], {"GITSYNC_REF": "v3"}, "ref", "v2"),
        (["--dest=html"], {}, "link", Path("/git/html")),
        (["--link=/srv/www"], {}, "link", Path("/srv/www")),
        (["--timeout=7"], {}, "sync_timeout", 7.0),
        (["--max-sync-failures=3"], {}, "max_failures", 3),
        (["--max-failures=-1"], {}, "max_failures", -1),
        (["--sync-hook-command=/bin/true"], {}, "exechook_command", "/bin/true"),
        (["-v", "3"], {}, "verbose", 3),
        (["-v=4"], {}, "verbose", 4),
        (["-v5"], {}, "verbose", 5),
        (["--v=6"], {}, "verbose", 6),
        ([], {"GITSYNC_VERBOSE": "2"}, "verbose", 2),
        (["--one-time"], {}, "one_time", True),
        (["--one-time=false"], {"GITSYNC_ONE_TIME": "true"}, "one_time", False),
        ([], {"GITSYNC_ONE_TIME": "T"}, "one_time", True),
        (["--depth=0"], {}, "depth", 0),
        (["--depth=0x10"], {}, "depth", 16),
        (["--depth=010"], {}, "depth", 8),
        (["--max-failures=-3"], {}, "max_failures", -3),
        (["--sync-on-signal=SIGHUP"], {}, "sync_on_signal", 1),
        (["--sync-on-signal=HUP"], {}, "sync_on_signal", 1),
        (["--sync-on-signal=10"], {}, "sync_on_signal", 10),
        (["--submodules=off"], {}, "submodules", Submodules.OFF),
        (["--git-gc=aggressive"], {}, "git_gc", GitGC.AGGRESSIVE),
        (["--error-file=err.json"], {}, "error_file", Path("/git/err.json")),
        (["--ssh-key-file=/a", "--ssh-key-file=/b"], {}, "ssh_key_files", ("/a", "/b")),
        ([], {"GIT_SSH_KEY_FILE": "/k"}, "ssh_key_files", ("/k",)),
        ([], {"GIT_KNOWN_HOSTS": "false"}, "ssh_known_hosts", False),
        (
            ["--webhook-url=http://x", "--webhook-success-status=-1"],
            {},
            "webhook_success_status",
            0,
        ),
        (["--init-period=50ms"], {}, "init_period", 0.05),
        (["--period=3s"], {}, "init_period", 3.0),
    ],
)
def test_flag_and_env_values(
    argv: list[str], env: dict[str, str], field: str, expected: object
) -> None:
    assert getattr(cfg([*BASE, *argv], env), field) == expected


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        ([], {}, "required flag: --root must be specified"),
        (["--root=/git"], {}, "required flag: --repo must be specified"),
        ([*BASE, "--period=5ms"], {}, "--period must be at least 10ms"),
        ([*BASE, "--sync-timeout=1ms"], {}, "--sync-timeout must be at least 10ms"),
        ([*BASE, "--depth=-1"], {}, "--depth must be greater than or equal to 0"),
        ([*BASE, "--submodules=some"], {}, "--submodules must be one of"),
        ([*BASE, "--git-gc=never"], {}, "--git-gc must be one of"),
        (
            [*BASE, "--branch=a", "--rev=b"],
            {},
            "can't set --ref from deprecated --branch and --rev",
        ),
        ([*BASE, "--ref="], {}, "required flag: --ref must be specified"),
        ([*BASE, "--change-permissions=777"], {}, "--change-permissions is no longer supported"),
        ([*BASE, "--sync-on-signal=SIGNOPE"], {}, "--sync-on-signal must be a valid signal"),
        ([*BASE, "--exechook-command=x", "--exechook-timeout=10ms"], {}, "--exechook-timeout"),
        ([*BASE, "--webhook-url=http://x", "--webhook-backoff=0s"], {}, "--webhook-backoff"),
        ([*BASE, "--webhook-url=http://x", "--webhook-success-status=-3"], {}, "success-status"),
        ([*BASE, "--username=u"], {}, "$GITSYNC_PASSWORD or --password-file must be specified"),
        ([*BASE, "--password-file=/p"], {}, "--password-file may only be specified when"),
        (BASE, {"GITSYNC_PASSWORD": "x"}, "$GITSYNC_PASSWORD may only be specified when"),
        (
            [*BASE, "--username=u", "--password-file=/p"],
            {"GITSYNC_PASSWORD": "x"},
            "only one of $GITSYNC_PASSWORD and --password-file",
        ),
        (
            ["--repo=https://a:b@h/r", "--root=/g", "--username=u", "--password-file=/p"],
            {},
            "credentials may not be specified in --repo",
        ),
        ([*BASE, "--http-metrics"], {}, "--http-bind must be specified when --http-metrics"),
        ([*BASE, "--credential={}"], {}, "--credential URL must be specified"),
        ([*BASE, '--credential={"url":"u"}'], {}, "--credential username must be specified"),
        ([*BASE], {"GITSYNC_PERIOD": "soon"}, "invalid value 'soon' for $GITSYNC_PERIOD"),
        ([*BASE], {"GITSYNC_DEPTH": "deep"}, "invalid value 'deep' for $GITSYNC_DEPTH"),
        ([*BASE], {"GITSYNC_ONE_TIME": "yes"}, "invalid value 'yes' for $GITSYNC_ONE_TIME"),
        (
            [*BASE, "--github-app-application-id=1", "--github-app-client-id=c"],
            {},
            "only one of --github-app-application-id or --github-app-client-id",
        ),
        ([*BASE, "--github-app-client-id=c"], {}, "--github-app-installation-id must be"),
        (
            [*BASE, "--github-app-client-id=c", "--github-app-installation-id=2"],
            {},
            "$GITSYNC_GITHUB_APP_PRIVATE_KEY or --github-app-private-key-file must be",
        ),
        (
            [*BASE, "--github-app-installation-id=2"],
            {},
            "--github-app-installation-id may only be specified",
        ),
    ],
)
def test_bad_values_are_config_errors(argv: list[str], env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load(argv, env)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--no-such-flag"], "unknown flag: --no-such-flag"),
        (["-x"], "unknown shorthand flag"),
        (["--period=abc"], "invalid value 'abc' for --period flag"),
        (["--depth=one"], "invalid value 'one' for --depth flag"),
        (["--one-time=maybe"], "invalid value 'maybe' for --one-time flag"),
        (["--period"], "flag needs an argument: --period"),
        (["stray"], "unexpected argument"),
        (["--credential=not json"], "invalid value 'not json' for --credential flag"),
    ],
)
def test_malformed_command_lines_are_usage_errors(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError) as raised:
        load([*BASE, *argv], {})
    assert message in str(raised.value)


@given(
    st.lists(
        st.one_of(
            st.text(max_size=12),
            st.sampled_from(["--period", "--ref", "-v", "--one-time", "--credential", "--"]),
            st.builds(
                lambda name, value: f"--{name}={value}",
                st.sampled_from(["period", "depth", "one-time", "v", "wait", "credential"]),
                st.text(max_size=8),
            ),
        ),
        max_size=6,
    ),
    st.dictionaries(
        st.sampled_from(["GITSYNC_PERIOD", "GIT_SYNC_DEPTH", "GITSYNC_ONE_TIME", "GITSYNC_REF"]),
        st.text(max_size=6).filter(lambda v: "\x00" not in v),
        max_size=3,
    ),
)
def test_any_input_is_a_config_a_usage_error_or_a_config_error(
    argv: list[str], env: dict[str, str]
) -> None:
    """Whatever the command line and environment, parsing never fails with anything else (so the
    user never sees a traceback)."""
    try:
        load([*BASE, *argv], env)
    except (UsageError, ConfigError) as err:
        assert "\n" not in str(err)


@pytest.mark.parametrize(("argv", "kind"), [(["--version"], "version"), (["-h"], "help")])
def test_print_and_exit_actions(argv: list[str], kind: str) -> None:
    assert load(argv, {}) == Action(kind)


def test_url_credentials_move_to_the_credential_store() -> None:
    c = cfg(["--repo=https://bob:hunter22@git.example.com/site.git", "--root=/g"])
    assert c.repo == "https://git.example.com/site.git"
    assert c.credentials[0].username == "bob" and c.credentials[0].password == "hunter22"


def test_username_and_password_file_make_the_first_credential() -> None:
    c = cfg(
        [
            *BASE,
            "--username=u",
            "--password-file=/run/pw",
            '--credential={"url":"https://o","username":"x","password":"y"}',
        ]
    )
    first = c.credentials[0]
    assert (first.url, first.username, first.password_file) == (
        "https://example.com/org/site.git",
        "u",
        "/run/pw",
    )
    assert c.credentials[1].username == "x"


def test_redact_url() -> None:
    assert redact_url("https://u:pw@h/r") == "https://u:REDACTED@h/r"
    assert redact_url("https://h/r") == "https://h/r"


@pytest.mark.parametrize(
    ("text", "pairs"),
    [
        ("", []),
        ("a.b:c", [("a.b", "c")]),
        ("a.b:c,d.e:f", [("a.b", "c"), ("d.e", "f")]),
        (
            '"http.sslVerify":"false","x.y":"a, b: c"',
            [("http.sslVerify", "false"), ("x.y", "a, b: c")],
        ),
    ],
)
def test_git_config_pairs(text: str, pairs: list[tuple[str, str]]) -> None:
    assert parse_git_config(text) == pairs


@pytest.mark.parametrize("text", ["novalue", '"unterminated:x', "a:b:c"])
def test_bad_git_config(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_git_config(text)


# -- push trigger authentication ----------------------------------------------------------------


def test_trigger_signatures() -> None:
    secret, body = b"shh", b'{"ref":"refs/heads/main"}'
    assert authorized(secret, {"X-Hub-Signature-256": sign(secret, body)}, body)
    assert not authorized(secret, {"X-Hub-Signature-256": sign(b"other", body)}, body)
    assert not authorized(secret, {"X-Hub-Signature-256": sign(secret, body)}, body + b" ")
    assert authorized(secret, {"X-Gitlab-Token": "shh"}, body)
    assert not authorized(secret, {"X-Gitlab-Token": "nope"}, body)
    assert not authorized(secret, {}, body)
    assert not authorized(b"", {"X-Gitlab-Token": ""}, body)


# -- redaction -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("fatal: https://bob:hunter22@h/r.git", "fatal: https://bob:REDACTED@h/r.git"),
        (
            "http://u:p@127.0.0.1:8080/x and ssh://git@h/x",
            "http://u:REDACTED@127.0.0.1:8080/x and ssh://git@h/x",
        ),
        ("password was s3cret-Passw0rd", "password was REDACTED"),
        ("nothing secret here", "nothing secret here"),
    ],
)
def test_redactor(text: str, expected: str) -> None:
    from sidecars.git_sync.jsonlog import Redactor

    redact = Redactor()
    redact.add("s3cret-Passw0rd")
    redact.add("x")  # too short to redact safely: ignored
    assert redact(text) == expected


def test_redactor_keeps_only_recent_secrets() -> None:
    from sidecars.git_sync.jsonlog import Redactor

    redact = Redactor()
    for i in range(Redactor.MAX_SECRETS + 10):
        redact.add(f"token-{i:04d}")
    newest = f"token-{Redactor.MAX_SECRETS + 9:04d}"
    assert redact(newest) == "REDACTED"
    assert redact("token-0000") == "token-0000"  # rotated out long ago
