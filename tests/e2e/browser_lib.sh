# Shared by the browser tests (test_browser*.sh), after lib.sh: Debian's
# headless Chromium and playwright-core from npm, pinned by
# tests/browser/package-lock.json and installed once under the build directory
# (npm ci runs again only when the lock file changed, so later runs work
# offline). Missing chromium, node or npm is a failure, not a skip.
CHROMIUM=/usr/bin/chromium
BROWSER_SRC="$LMDM_SRC/tests/browser"
NODE_DIR="$LMDM_BUILD/browser-node" # node_modules for the tests, outside the source tree

browser_need() { # browser_need COMMAND-OR-PATH WHAT
  command -v "$1" >/dev/null 2>&1 && return 0
  echo "FAIL: $2 is missing ($1). The browser test needs it; install it with deploy/install-deps.sh."
  exit 1
}

# browser_setup: the tools, then playwright-core (prints how long it took).
browser_setup() {
  local started=$SECONDS
  browser_need "$CHROMIUM" "Debian's chromium package"
  browser_need node "Node.js (Debian package nodejs)"
  browser_need npm "npm (Debian package npm)"
  mkdir -p "$NODE_DIR"
  if ! [ -f "$NODE_DIR/node_modules/playwright-core/package.json" ] ||
    ! cmp -s "$BROWSER_SRC/package-lock.json" "$NODE_DIR/package-lock.json"; then
    cp "$BROWSER_SRC/package.json" "$BROWSER_SRC/package-lock.json" "$NODE_DIR/"
    if ! (cd "$NODE_DIR" && npm ci --no-audit --no-fund --prefer-offline --fetch-retries=1 \
      --fetch-timeout=30000 >npm.log 2>&1); then
      echo "FAIL: npm ci could not install playwright-core (pinned in tests/browser/package-lock.json)"
      echo "into $NODE_DIR. The npm registry must be reachable the first time (or the package in the npm"
      echo "cache). npm said:"
      tail -n 20 "$NODE_DIR/npm.log"
      exit 1
    fi
  fi
  pass "playwright-core installed ($((SECONDS - started)) s)"
}
