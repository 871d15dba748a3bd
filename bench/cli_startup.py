"""How long `pai-bot` takes to start: `--help`, and `check` on a small SQLite database.

The baseline, measured in the same run, is `python -c pass` with the same interpreter:
what no command can go below; beside it, the time to import the database libraries
alone (SQLModel on async SQLAlchemy, aiosqlite), below which no command that opens the
database can go. Each command runs RUNS times; the median is printed,
and the best. Goals (on the 2-core development machine): `--help` <= 0.3 s, `check`
<= 0.6 s.

    python -m bench.cli_startup [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUNS = 15
GOALS = {"--help": 0.3, "check": 0.6}


def timed(command: list[str], env: dict[str, str], runs: int) -> list[float]:
    took = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, env=env, check=True, capture_output=True)
        took.append(time.perf_counter() - started)
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=RUNS)
    args = parser.parse_args()
    pai_bot = [sys.executable, "-m", "bot.app.cli"]
    with tempfile.TemporaryDirectory() as folder:
        env = {**os.environ, "DATABASE_URL": f"sqlite:///{Path(folder) / 'pai.db'}"}
        # As an installed package runs: compiled once (pip writes the .pyc files), not
        # compiled again at every start.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        partners = Path(folder) / "partners.csv"
        partners.write_text("code,company,level\nACME,Acme,gold\n")
        subprocess.run(  # also the warm-up: the .pyc files written
            [*pai_bot, "import-partners", str(partners)], env=env, check=True, capture_output=True
        )
        runs = {
            "python -c pass (baseline)": timed([sys.executable, "-c", "pass"], env, args.runs),
            # What any command on the database pays before the bot's own code: importing
            # the libraries the design chose (SQLModel on async SQLAlchemy, aiosqlite).
            "the libraries alone (floor)": timed(
                [sys.executable, "-c", "import sqlalchemy.ext.asyncio, sqlmodel, aiosqlite"],
                env,
                args.runs,
            ),
            "--help": timed([*pai_bot, "--help"], env, args.runs),
            "check": timed([*pai_bot, "check", "IT12345670587"], env, args.runs),
        }
    baseline = statistics.median(runs["python -c pass (baseline)"])
    for name, took in runs.items():
        median = statistics.median(took)
        goal = GOALS.get(name)
        line = f"{name:28} median {median:.3f} s, best {min(took):.3f} s"
        if goal is not None:
            line += f", {median / baseline:.1f}x the baseline (goal <= {goal} s)"
        print(line)


if __name__ == "__main__":
    main()
