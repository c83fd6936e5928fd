#!/usr/bin/env bash
# `cmake --install` of a full build puts the binaries, their man pages, bkv's
# bash completion and the vault's systemd unit where a distribution expects
# them, and the completion completes (issue 19.6).
#   install_test.sh BUILD_DIR
set -euo pipefail
build=$1
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" >/dev/null
for f in bin/bkv bin/bkv-vault share/bash-completion/completions/bkv \
  share/bash-completion/completions/bkv-vault \
  lib/systemd/system/bkv-vault.service share/man/man1/bkv.1 \
  share/man/man1/bkv-vault.1; do
  [[ -e $prefix/$f ]] || { echo "not installed: $f"; exit 1; }
done
"$prefix/bin/bkv" --version | grep -Eq '^bkv [0-9]+\.[0-9]+\.[0-9]+ '
"$prefix/bin/bkv-vault" --version | grep -Eq '^bkv-vault [0-9]+\.[0-9]+\.[0-9]+ '
# The man pages carry the commands' own help.
grep -q 'restore' "$prefix/share/man/man1/bkv.1"
grep -q 'serve' "$prefix/share/man/man1/bkv-vault.1"
# Completion: the words each position offers.
complete_words() {  # the command line's words; completes the last one
  local program=$1 function=_${1//-/_}
  bash -c 'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1));
           '"$function"'; echo "${COMPREPLY[*]}"' _ \
    "$prefix/share/bash-completion/completions/$program" "$@"
}
check() {  # expected, words...
  local want=$1 got
  shift
  got=$(complete_words "$@")
  [[ " $got " == *" $want "* ]] || { echo "completing '$*': got '$got', want $want"; exit 1; }
}
check backup bkv ba
check status bkv vault st
check --key-file bkv restore --key
check --vault-key bkv vault status --vault-k
check --password-stdin bkv vault change-password --pass
check serve bkv-vault se
check export-request bkv-vault hsm export-
check --softhsm-dir bkv-vault hsm init --soft
check --attempt-limit bkv-vault serve --attempt
check --so-pin-file bkv-vault rollback reanchor --so
echo ok
