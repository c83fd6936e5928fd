#!/usr/bin/env bash
# The malicious-realm switch exists only in bkv-vault-testrealm: the release
# bkv-vault refuses --test-fault and holds none of its code (its log event
# string), while the test build does. Usage: SCRIPT BKV_VAULT TESTREALM
set -euo pipefail
vault=$1 testrealm=$2
fail() { echo "FAIL: $*" >&2; exit 1; }
"$vault" completion bash >/dev/null || fail "bkv-vault completion bash"
if "$vault" --test-fault ignore-counter completion bash >/dev/null 2>&1; then
  fail "the release bkv-vault accepted --test-fault"
fi
! grep -q test_realm_fault "$vault" || fail "test-realm code in the release bkv-vault"
grep -q test_realm_fault "$testrealm" || fail "the check itself: no marker in the test build"
"$testrealm" --test-fault ignore-counter completion bash >/dev/null ||
  fail "the test build does not take --test-fault"
echo PASS
