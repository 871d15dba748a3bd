#!/usr/bin/env bash
# Back up the PAI Assistant database while the bot runs, then delete backups older
# than PAI_BACKUP_KEEP_DAYS. Run it from cron or a systemd timer, e.g. nightly as
# the bot's user (/etc/cron.d/pai-bot):
#
#   15 3 * * *  pai  set -a; . /etc/pai-bot/env; /opt/pai-bot/backup.sh /var/backups/pai-bot
#
# usage: backup.sh [DEST_DIR]          (default /var/backups/pai-bot)
#
# Which database comes from DATABASE_URL, as for pai-bot:
#   postgresql://user:pass@host/db  pg_dump -Fc -> DEST_DIR/pai-backup-YYYYmmdd-HHMMSS.dump
#   sqlite:////path/pai.db          SQLite's online backup (consistent, WAL included)
#                                   -> DEST_DIR/pai-backup-YYYYmmdd-HHMMSS.db, and the
#                                   pai-conversations.db beside it, when there is one,
#                                   -> DEST_DIR/pai-backup-YYYYmmdd-HHMMSS-conversations.db
# With PAI_COMPOSE_FILE=/path/to/deploy/compose.yaml instead, pg_dump runs inside
# that compose project's `db` container (the host needs no PostgreSQL client).
#
# PAI_BACKUP_KEEP_DAYS (default 14): older backups in DEST_DIR are deleted, and only
# after this one succeeded. Each backup is checked (pg_restore --list, SQLite's
# integrity_check) before it gets its final name: a file named pai-backup-* is a
# complete backup. Times in names are UTC; files are readable by their owner only.
# Exit status 0 done (the backup's path printed), 1 failed (the reason printed, and
# no old backup deleted).
set -euo pipefail
umask 077

dest="${1:-/var/backups/pai-bot}"
keep_days="${PAI_BACKUP_KEEP_DAYS:-14}"
stamp="$(date -u +%Y%m%d-%H%M%S)"

fail() {
  echo "backup.sh: $*" >&2
  exit 1
}

[[ "$keep_days" =~ ^[0-9]+$ ]] || fail "PAI_BACKUP_KEEP_DAYS must be a number of days, not '$keep_days'"
mkdir -p -- "$dest"
tmp="$(mktemp -d "$dest/.partial.XXXXXX")"
trap 'rm -rf -- "$tmp"' EXIT

backup_postgres() {
  local target="$dest/pai-backup-$stamp.dump"
  if [[ -n "${PAI_COMPOSE_FILE:-}" ]]; then
    docker compose -f "$PAI_COMPOSE_FILE" exec -T db pg_dump -U pai -d pai -Fc > "$tmp/pai.dump" \
      || fail "pg_dump in the compose project's db container failed"
    docker compose -f "$PAI_COMPOSE_FILE" exec -T db pg_restore --list < "$tmp/pai.dump" > /dev/null \
      || fail "the dump does not read back: kept nothing"
  else
    command -v pg_dump > /dev/null || fail "pg_dump is missing: apt-get install postgresql-client"
    # libpq wants postgresql://; drop a SQLAlchemy driver suffix (postgresql+asyncpg://).
    local url="${DATABASE_URL/#postgresql+*:\/\//postgresql://}"
    url="${url/#postgres:\/\//postgresql://}"
    pg_dump -Fc --dbname="$url" --file="$tmp/pai.dump" || fail "pg_dump failed"
    pg_restore --list "$tmp/pai.dump" > /dev/null || fail "the dump does not read back: kept nothing"
  fi
  mv -- "$tmp/pai.dump" "$target"
  echo "$target"
}

sqlite_backup_file() { # SOURCE TARGET
  local source="$1" target="$2" name verdict
  name="$(basename -- "$target")"
  if command -v sqlite3 > /dev/null; then
    # .backup copies page by page under SQLite's own locks: the bot keeps running.
    sqlite3 "$source" ".timeout 10000" ".backup '$tmp/$name'" || fail "cannot back up $source"
    verdict="$(sqlite3 "$tmp/$name" "PRAGMA integrity_check")" \
      || fail "cannot read back the backup of $source"
  else
    # The same online-backup API through Python's sqlite3 module (a host without
    # the sqlite3 program, or the bot's own container).
    verdict="$(python3 -c '
import sqlite3, sys
source = sqlite3.connect(sys.argv[1], timeout=10)
target = sqlite3.connect(sys.argv[2])
source.backup(target)
source.close()
print(target.execute("PRAGMA integrity_check").fetchone()[0])
target.close()
' "$source" "$tmp/$name")" || fail "cannot back up $source"
  fi
  [[ "$verdict" == ok ]] || fail "the backup of $source is damaged ($verdict): kept nothing"
  mv -- "$tmp/$name" "$target"
  echo "$target"
}

backup_sqlite() {
  local path="${DATABASE_URL#sqlite*:///}"
  path="${path%%\?*}"
  [[ -f "$path" ]] || fail "there is no database at $path: check DATABASE_URL"
  # The bot keeps half-typed registrations in pai-conversations.db beside pai.db.
  local conversations="$path-conversations"
  if [[ "$(basename -- "$path")" == *.* ]]; then
    conversations="${path%.*}-conversations.${path##*.}"
  fi
  sqlite_backup_file "$path" "$dest/pai-backup-$stamp.db"
  if [[ -f "$conversations" ]]; then
    sqlite_backup_file "$conversations" "$dest/pai-backup-$stamp-conversations.db"
  fi
}

if [[ -n "${PAI_COMPOSE_FILE:-}" ]]; then
  backup_postgres
else
  case "${DATABASE_URL:-}" in
    postgresql:* | postgresql+*:* | postgres:*) backup_postgres ;;
    sqlite:*) backup_sqlite ;;
    "") fail "DATABASE_URL is not set (or set PAI_COMPOSE_FILE for the compose project)" ;;
    *) fail "DATABASE_URL must start with sqlite:/// or postgresql://" ;;
  esac
fi

# Retention, now that a new backup exists. Only files this script names: a live
# database never matches, whatever DEST_DIR is.
find "$dest" -maxdepth 1 -type f \( -name 'pai-backup-*.dump' -o -name 'pai-backup-*.db' \) \
  -mtime +"$keep_days" -delete
