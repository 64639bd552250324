"""The installed `readerfirst` console script, run as a user runs it."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time

import pytest

from tests.conftest import EDITION, ROOT, SAMPLE_AUDIENCE, TEMPLATES

MAILCHIMP = ROOT / "tests" / "fixtures" / "mailchimp"


def run(home, *args, env=None, check=True):
    """Run `readerfirst ARGS` with READERFIRST_HOME=home; returns the completed process."""
    if shutil.which("readerfirst") is None:
        pytest.fail("the readerfirst console script is not installed (pip install -e .)")
    environment = {**os.environ, "READERFIRST_HOME": str(home), "READERFIRST_SECRET": "cli-secret-of-at-least-32-bytes!!"}
    for name in ("SENDGRID_API_KEY", "READERFIRST_DATABASE_URL", "READERFIRST_DEBUG", "COLUMNS"):
        environment.pop(name, None)  # output is read as a script reads it: a pipe, no width set
    environment.update(env or {})
    result = subprocess.run(["readerfirst", *args], capture_output=True, text=True, env=environment, timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(f"readerfirst {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def test_db_upgrade_creates_and_reports(tmp_path):
    """`db upgrade` creates the SQLite file and says it is up to date on the second run."""
    first = run(tmp_path, "db", "upgrade")
    revisions = sorted(p.name[:4] for p in (ROOT / "pipeline" / "store" / "migrations" / "versions").glob("0*.py"))
    assert revisions[:8] == ["0001", "0002", "0003", "0004", "0005", "0006", "0007", "0008"]
    assert f"applied {', '.join(revisions)}" in first.stdout and (tmp_path / "readerfirst.db").exists()
    assert "is up to date" in run(tmp_path, "db", "upgrade").stdout


def test_import_bad_file_lists_every_row_and_imports_nothing(tmp_path):
    """A bad audience file exits non-zero with FILE:LINE: field=value: reason per bad row, importing nothing."""
    bad = tmp_path / "bad.csv"
    bad.write_text("email,first_name,interests\nok@example.com,Ok,climate\nnot-an-email,X,\nb@example.com,B,ai:7\n")
    result = run(tmp_path, "audience", "import", str(bad), "--audience", "main", check=False)
    assert result.returncode == 2
    assert f"{bad}:3: email=not-an-email:" in result.stderr
    assert f"{bad}:4: interests=ai:7: weight must be from 0 to 1" in result.stderr
    assert "nothing was changed" in result.stderr
    assert "main" not in run(tmp_path, "audience", "list").stdout


def test_import_skip_invalid_writes_rejected_rows(tmp_path):
    """--skip-invalid imports the good rows and writes the bad ones to a file."""
    bad = tmp_path / "mixed.csv"
    bad.write_text("email,first_name\nok@example.com,Ok\nnope,X\n")
    result = run(tmp_path, "audience", "import", str(bad), "--audience", "main", "--skip-invalid")
    assert "imported 1 readers" in result.stdout
    assert (tmp_path / "mixed.rejected.csv").read_text() == "email,first_name\nnope,X\n"


def test_preview_prints_picks_and_writes_files(tmp_path):
    """`preview` writes the reader's HTML and text and prints each pick with its reason."""
    run(tmp_path, "audience", "import", str(SAMPLE_AUDIENCE), "--audience", "sample")
    # No holdout here: a holdout reader (a stable 10% drawn from a random public id) gets the editor's selection.
    result = run(tmp_path, "preview", str(EDITION), "--email", "Kemi.Moreau.0@example.com",
                 env={"READERFIRST_HOLDOUT_SHARE": "0"})
    assert "editor's pick for every reader" in result.stdout
    assert "you follow Climate" in result.stdout
    html = next((tmp_path / "previews" / "2026-12-07").glob("*.html")).read_text()
    assert "Hi Kemi," in html and "%%rf:" not in html
    unsubscribed = run(tmp_path, "preview", str(EDITION), "--email", "jun.costa.41@example.org")
    assert unsubscribed.stderr == ("warning: this reader is unsubscribed: a send skips them;"
                                   " the preview shows what they would get\n")


def test_mailchimp_export_needs_its_status_stated_and_list_shows_it(tmp_path):
    """A renamed Mailchimp export is refused in one line naming --status; with it, `audience list` counts them."""
    export = tmp_path / "contacts.csv"
    shutil.copyfile(MAILCHIMP / "nonsubscribed_members_export_7c1f2e9a0b.csv", export)
    refused = run(tmp_path, "audience", "import", str(export), "--audience", "shop", check=False)
    assert refused.returncode == 2
    assert f"{export}:1: status=contacts.csv: cannot tell whether this Mailchimp export holds" in refused.stderr
    assert "pass --status subscribed (or nonsubscribed" in refused.stderr
    run(tmp_path, "audience", "import", str(export), "--audience", "shop", "--status", "nonsubscribed")
    listed = run(tmp_path, "audience", "list").stdout
    assert "nonsubscribed" in listed
    header = next(line for line in listed.splitlines() if "nonsubscribed" in line)
    row = next(line for line in listed.splitlines() if "shop" in line)
    counts = dict(zip([c.strip() for c in header.split("┃")[1:-1]], [c.strip() for c in row.split("│")[1:-1]]))
    assert counts == {"audience": "shop", "subscribed": "0", "unsubscribed": "0", "cleaned": "0",
                      "nonsubscribed": "1", "suppressed": "0"}


def test_preview_finds_a_reader_by_either_form_and_shows_unicode(tmp_path):
    """`preview --email` finds a reader stored in IDNA form from the Unicode form typed, and shows it in Unicode."""
    people = tmp_path / "people.csv"
    people.write_text("email,first_name,interests\nanna@münchen.de,Anna,climate\n", encoding="utf-8")
    run(tmp_path, "audience", "import", str(people), "--audience", "main")
    result = run(tmp_path, "preview", str(EDITION), "--email", "Anna@MÜNCHEN.de", "--out", str(tmp_path / "out"))
    assert "what anna@münchen.de gets" in result.stdout
    assert (tmp_path / "out" / "anna@xn--mnchen-3ya.de.html").exists()


def test_check_reports_invalid_edition(tmp_path):
    """`check` names the file, line and field of a broken edition."""
    shutil.copytree(EDITION.parent, tmp_path / "editions")
    broken = tmp_path / "editions" / "2026-12-07.yaml"
    broken.write_text(broken.read_text().replace("kind: lead", "kind: leed"))
    result = run(tmp_path, "check", str(broken), check=False)
    assert result.returncode == 2
    assert "kind=leed: unknown kind (did you mean lead?); use one of article, ask, event, lead, letter, links," \
           " pair, quote, sponsor" in result.stderr
    assert "2026-12-07.yaml:28: sections[heat-pumps-offices].kind=leed" in result.stderr


def test_check_and_send_refuse_invalid_mjml_with_the_same_message(tmp_path):
    """`check` and `send` refuse a template with a mistyped closing tag, naming its file and line; nothing is sent."""
    templates = tmp_path / "templates"
    shutil.copytree(TEMPLATES, templates)
    partial = templates / "sections" / "article.mjml.j2"
    text = partial.read_text()
    assert text.count("  </mj-column>\n  <mj-column") == 1
    partial.write_text(text.replace("  </mj-column>\n  <mj-column", "  </mj-colum>\n  <mj-column"))
    env = {"READERFIRST_TEMPLATES": str(templates), "READERFIRST_SECRET": "a-cli-secret-of-at-least-32-bytes!",
           "COLUMNS": "1000"}
    check = run(tmp_path, "check", str(EDITION), env=env, check=False)
    send = run(tmp_path, "send", str(EDITION), "--audience", "sample", env=env, check=False)
    assert check.returncode == send.returncode == 2
    line = f"{partial}:4: closing tag=</mj-colum>: matches no open element"
    assert line in check.stderr and line in send.stderr
    problems = [row.strip() for row in check.stderr.splitlines() if str(templates) in row]
    assert problems and problems == [row.strip() for row in send.stderr.splitlines() if str(templates) in row]
    assert not (tmp_path / "outbox").exists()


def test_send_through_cli_with_progress_then_status(tmp_path, prefect_harness):
    """`send` runs the flow (against the harness's server), shows progress and a summary; `status` agrees."""
    env = {"PREFECT_API_URL": prefect_harness}
    run(tmp_path, "audience", "import", str(SAMPLE_AUDIENCE), "--audience", "sample")
    result = run(tmp_path, "send", str(EDITION), "--audience", "sample", "--limit", "40", env=env)
    assert "sent_total" not in result.stdout and "sent total" in result.stdout
    assert "━" not in result.stdout + result.stderr  # no progress bar when output is not a terminal
    status = run(tmp_path, "status", str(EDITION)).stdout
    assert "sent 40" in status and "planned 0" in status
    assert len(list((tmp_path / "outbox" / "2026-12-07").glob("*.eml"))) == 40
    data = json.loads(run(tmp_path, "status", str(EDITION), "--json").stdout)
    sendable = json.loads(run(tmp_path, "audience", "list", "--json").stdout)[0]["subscribed"]
    assert data["counts"]["sent"] == 40 and data["remaining"] == {"sample": sendable - 40}
    assert f"{sendable - 40} readers of sample not yet sent" in status
    sent = json.loads(run(tmp_path, "send", str(EDITION), "--audience", "sample", "--limit", "2", "--json",
                          env=env).stdout)
    assert (sent["edition"], sent["sent"]) == ("2026-12-07", 2)


def test_unknown_audience_is_a_clear_error(tmp_path):
    """Sending to an audience that was never imported says so and lists what exists."""
    result = run(tmp_path, "send", str(EDITION), "--audience", "nobody", check=False)
    assert result.returncode == 2 and "no audience named 'nobody'" in result.stderr


def test_demo_runs_the_whole_job(tmp_path, prefect_harness):
    """`demo` imports, sends through the emulator, gets events, answers to the ask and replies, writes previews."""
    import sqlite3

    folder = tmp_path / "demo"
    result = run(tmp_path, "demo", "--folder", str(folder), env={"PREFECT_API_URL": prefect_harness})
    assert "open the previews: file://" in result.stdout
    holdout = re.search(r"the holdout is (\d+) of 400 readers in each edition", result.stdout)
    assert holdout and 20 <= int(holdout.group(1)) <= 60, result.stdout  # per edition (~10%), not a sum of four
    assert (folder / ".readerfirst-demo").is_file()
    index = folder / "previews" / "2026-12-07" / "index.html"
    assert index.exists() and "editor&#x27;s pick for every reader" in index.read_text()
    with sqlite3.connect(folder / "readerfirst.db") as connection:
        events = dict(connection.execute("SELECT event_type, count(*) FROM engagement_events GROUP BY 1").fetchall())
        sent = connection.execute("SELECT count(*) FROM send_ledger WHERE state = 'sent'").fetchone()[0]
    assert sent > 300 and events.get("delivered") == sent
    # The ask's loop: readers answered on the web service, and one's next copy serves the need.
    answered = re.search(r"(\d+) readers answered the ask", result.stdout)
    assert answered and int(answered.group(1)) > 5, result.stdout
    example = re.search(r"reader (\S+) said they need ([a-z-]+) \(in their words: .+\); their next copy:\n"
                        r"(?:   .*\n)*?   .*\(you said you need help with ", result.stdout)
    assert example, result.stdout
    with sqlite3.connect(folder / "readerfirst.db") as connection:
        stored = connection.execute("SELECT count(DISTINCT reader_id) FROM ask_answers").fetchone()[0]
        sources = {s for (s,) in connection.execute("SELECT source FROM reader_needs")}
    assert stored == int(answered.group(1)) and "ask" in sources
    # The simulated editions ask too: the report counts their answers and serves the needs.
    rates = re.findall(r"sim-00\d: response rate personalised \S+ \((\d+) answers to the ask, (\d+) replies\).*"
                       r"needs served: (\d+) of (\d+) readers", result.stdout)
    assert len(rates) == 4 and all(int(a) > 0 and int(r) > 0 for a, r, _, _ in rates), result.stdout
    assert int(rates[-1][2]) > 0  # later editions serve the needs stated in earlier ones


def test_demo_folder_keeps_what_the_user_put_there(tmp_path):
    """A demo folder is cleared of the demo's own files only: a file the user added survives a rerun."""
    from pipeline.cli.demo import MARKER, clear_demo_folder

    folder = tmp_path / "demo"
    clear_demo_folder(folder)
    (folder / "readerfirst.db").write_text("demo's")
    (folder / "previews").mkdir()
    (folder / "notes.txt").write_text("mine")
    clear_demo_folder(folder)
    assert sorted(p.name for p in folder.iterdir()) == [MARKER, "notes.txt"]


def test_user_text_is_printed_as_written(tmp_path):
    """Emoji codes and markup in user values print literally, and FILE:LINE lines are never wrapped in a pipe."""
    long_name = tmp_path / ("a-rather-long-folder-name-for-an-audience-export-" * 2) / "export.csv"
    long_name.parent.mkdir()
    long_name.write_text("email,interests\na@example.com,ai:abc;climate:cd\n")
    result = run(tmp_path, "audience", "import", str(long_name), "--audience", "x", check=False)
    assert result.stderr.splitlines()[1:] == [
        f"  {long_name}:2: interests=ai:abc: weight must be a number from 0 to 1",
        f"  {long_name}:2: interests=climate:cd: weight must be a number from 0 to 1"]
    good = tmp_path / "good.csv"
    good.write_text("email,interests\nb@example.com,ai\n")
    imported = run(tmp_path, "audience", "import", str(good), "--audience", "[bold]news:cd:[/]").stdout
    assert imported == "imported 1 readers into [bold]news:cd:[/] (1 new, 0 updated)\n"


def test_ctrl_c_stops_serve_without_a_traceback(tmp_path, prefect_harness):
    """Ctrl-C on `serve` after its deployments are registered stops it with one line and exit 0."""
    import httpx

    run(tmp_path, "audience", "import", str(SAMPLE_AUDIENCE), "--audience", "sample")
    environment = {**os.environ, "READERFIRST_HOME": str(tmp_path), "PREFECT_API_URL": prefect_harness,
                   "READERFIRST_SECRET": "cli-secret-of-at-least-32-bytes!!"}
    process = subprocess.Popen(["readerfirst", "serve", "--audience", "sample", "--editions", str(EDITION.parent)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        for _ in range(600):  # until the runner has registered its deployments (or exited)
            found = httpx.post(f"{prefect_harness}/deployments/filter", json={}).json()
            if any(d["name"] == "weekly-sample" for d in found) or process.poll() is not None:
                break
            time.sleep(0.5)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert "serving weekly-sample" in out
    assert (process.returncode, err) == (0, "stopped\n")
