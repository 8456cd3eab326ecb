# shellcheck shell=bash disable=SC2034  # STATE_ROOT is for the scripts that source this
# Shared by scripts/postgres.sh and scripts/slurm.sh (sourced, not run).
#
# Both run as root and keep their state under one folder. A predictable path that another local
# user could create first (or point somewhere with a symlink) would let them read or replace
# what root writes there, so every folder is made here, checked, and refused when it is not
# what it should be.

# Where the services keep their state: root's own folder (never under a world-writable parent).
STATE_ROOT=${ADAPTNAS_SERVICES_DIR:-/var/lib/adaptnas-services}

# Rewrites of system files are undone on exit, however the script exits (see keep_file).
declare -a _RESTORE=()
_restore_all() {
  local entry path backup
  for entry in "${_RESTORE[@]}"; do
    path=${entry%%|*}
    backup=${entry#*|}
    if [[ $backup == - ]]; then rm -f "$path"; else mv -f "$backup" "$path"; fi
  done
  _RESTORE=()
}
trap _restore_all EXIT
trap 'exit 130' INT TERM

# keep_file PATH: back PATH up now (or note that it did not exist) and put it back on exit.
keep_file() {
  local path=$1 backup
  if [[ -e $path || -L $path ]]; then
    backup=$(mktemp "$path.adaptnas-backup.XXXXXX")
    cp -a "$path" "$backup"
    _RESTORE+=("$path|$backup")
  else
    _RESTORE+=("$path|-")
  fi
}

# safe_dir PATH OWNER MODE: create PATH (its parents must exist or be made the same way) owned by
# OWNER with MODE, or check that it already is exactly that. Refuses a symlink anywhere in the
# path, a folder owned by someone else, and a parent that others may write to.
safe_dir() {
  local path=$1 owner=$2 mode=$3 parent uid
  [[ $path == /* ]] || { echo "services: $path: not an absolute path" >&2; return 1; }
  [[ $(realpath -m -- "$path") == "$path" ]] \
    || { echo "services: $path: the path has a symlink or '..' in it; refusing" >&2; return 1; }
  parent=$(dirname -- "$path")
  if [[ ! -d $parent ]]; then safe_dir "$parent" root 755 || return 1; fi
  # A parent others can write to could swap our folder between the check and its use, unless
  # it is sticky (like /tmp) and ours is owned by us.
  if [[ -n $(find "$parent" -maxdepth 0 -perm -0002 ! -perm -1000) ]]; then
    echo "services: $parent is world-writable (not sticky); refusing to keep state in it" >&2
    return 1
  fi
  if [[ ! -e $path && ! -L $path ]]; then
    (umask 077 && mkdir -- "$path") || return 1
  fi
  if [[ -L $path || ! -d $path ]]; then
    echo "services: $path exists and is not a plain folder; refusing" >&2
    return 1
  fi
  uid=$(stat -c %u -- "$path")
  if [[ $uid != 0 && $uid != $(id -u "$owner") ]]; then
    echo "services: $path belongs to uid $uid, not root or $owner; refusing" >&2
    return 1
  fi
  own_dir "$path" "$owner" "$mode"
}

# own_dir PATH OWNER MODE: give the folder PATH to OWNER with MODE, checked and changed through
# one descriptor opened with O_NOFOLLOW|O_DIRECTORY. A chown or chmod by name follows a symlink,
# and the parent of a folder may belong to a service account (postgres's socket folder sits in
# postgres's state folder): between a check by name and a change by name, that account could
# swap the folder for a link to any file and have root hand the file over. Through the
# descriptor, a link (or anything not a folder) is refused, and the folder checked (root's or
# OWNER's) is the one changed (fchown, fchmod), wherever it has been moved since. Perl because
# bash cannot open without following links; perl-base is Essential in Debian.
own_dir() {
  local path=$1 owner=$2 mode=$3 uid gid
  uid=$(id -u "$owner") && gid=$(id -g "$owner") || return 1
  perl -MFcntl -e '
    my ($path, $owner, $uid, $gid, $mode) = @ARGV;
    sysopen(my $fh, $path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW)
      or die "services: $path: not a plain folder ($!); refusing\n";
    my $have = (stat $fh)[4];
    $have == 0 || $have == $uid
      or die "services: $path belongs to uid $have, not root or $owner; refusing\n";
    chown($uid, $gid, $fh) && chmod(oct $mode, $fh) or die "services: $path: $!\n";
  ' -- "$path" "$owner" "$uid" "$gid" "$mode"
}

# apt_install PKG...: install Debian packages without letting their scripts start any daemon.
apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  # policy-rc.d answers "not now" to every service start during the install; whatever was there
  # (another tool's policy) is put back on exit.
  keep_file /usr/sbin/policy-rc.d
  printf '#!/bin/sh\n# adaptnas scripts: no service starts during our apt-get install\nexit 101\n' \
    >/usr/sbin/policy-rc.d
  chmod 755 /usr/sbin/policy-rc.d
  local opts=(-y -qq --no-install-recommends -o Dpkg::Options::=--force-confold)
  apt-get install "${opts[@]}" "$@" >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null && apt-get install "${opts[@]}" "$@" >/dev/null; }
}
