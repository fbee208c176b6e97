// The close codes of the TypeScript runtime against the close-code table of
// docs/CLIENTS.md, which client/closecode_test.go renders from the Go
// definitions: the named codes are the table's (and have the names of Go's
// protows.CloseCode constants), and closeAction and stopCode do what its
// rows say for every code from 0 to 5000. So the Go definitions, the docs
// and this runtime cannot drift apart.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { CloseCode, closeAction, stopCode, type CloseAction } from "../src/protocol.js";
import { CloseCode as RootCloseCode } from "../src/index.js";
import { repoRoot } from "./repo.js";

// The words of the "client does" column for each action (the Go test's
// actionText).
const actionText: Record<CloseAction, string> = {
  stop: "stop",
  backoff: "reconnect with backoff",
  now: "reconnect at once, with jitter (uniform below `Initial`)",
  throttled: "reconnect after `Initial` plus the backoff",
  token: "stop, unless the token source returns a different token: then reconnect with backoff",
  refresh: "get a new token, reconnect at once, with jitter (uniform below `Initial`)",
};

interface Row {
  label: string;
  does: string;
  failsWith: string; // "—" when the client does not stop
}

// closeTable reads the rows of the close-code table, by the names of its
// columns (so that a new column does not break the test).
function closeTable(markdown: string): Row[] {
  const lines = markdown.split("\n");
  const start = lines.findIndex((l) => /^\|\s*close code\s*\|/.test(l));
  assert.ok(start >= 0, "docs/CLIENTS.md has a table whose first column is 'close code'");
  const cells = (l: string) => l.trim().replace(/^\||\|$/g, "").split("|").map((c) => c.trim());
  const head = cells(lines[start]!);
  const col = (name: string) => {
    const i = head.indexOf(name);
    assert.ok(i >= 0, `the close-code table has a '${name}' column: ${head.join(", ")}`);
    return i;
  };
  const [label, does, fails] = [col("close code"), col("client does"), col("calls then fail with")];
  const rows: Row[] = [];
  for (const l of lines.slice(start + 2)) {
    if (!l.startsWith("|")) break;
    const c = cells(l);
    rows.push({ label: c[label]!, does: c[does]!, failsWith: c[fails]! });
  }
  return rows;
}

const rows = closeTable(readFileSync(join(repoRoot, "docs", "CLIENTS.md"), "utf8"));

// What the row says for a code, checked against the runtime.
function check(code: number, row: Row): void {
  const action = closeAction(code);
  assert.equal(actionText[action], row.does, `close ${code} (row "${row.label}"): closeAction says ${action}`);
  if (row.failsWith === "—") {
    assert.ok(action !== "stop" && action !== "token", `close ${code}: the table says the client does not stop`);
  } else {
    assert.equal(`\`${stopCode(code)}\``, row.failsWith, `close ${code} (row "${row.label}"): stopCode`);
  }
}

test("CloseCode names exactly the codes of the table in docs/CLIENTS.md", () => {
  const documented = rows.filter((r) => /^\d+$/.test(r.label)).map((r) => Number(r.label));
  assert.ok(documented.length >= 16, `rows with a code: ${documented.join(", ")}`);
  const named = Object.values(CloseCode) as number[];
  assert.deepEqual([...named].sort((a, b) => a - b), [...documented].sort((a, b) => a - b));
  assert.equal(new Set(named).size, named.length, "no code has two names");
  assert.equal(RootCloseCode, CloseCode, "the package root exports the same table");
  // The names the runtime relies on mean what they say.
  assert.equal(CloseCode.Abnormal, 1006);
  assert.equal(CloseCode.HeartbeatTimeout, 4002);
});

test("CloseCode has the names of Go's protows.CloseCode constants (closecode.go)", () => {
  // CloseNormal CloseCode = 1000 in Go is CloseCode.Normal here.
  const goSource = readFileSync(join(repoRoot, "closecode.go"), "utf8");
  const goCodes = Object.fromEntries([...goSource.matchAll(/^\s*Close(\w+)\s+CloseCode\s*=\s*(\d+)\s*$/gm)].map((m) => [m[1]!, Number(m[2])]));
  assert.ok(Object.keys(goCodes).length >= 16, `constants found in closecode.go: ${JSON.stringify(goCodes)}`);
  assert.deepEqual({ ...CloseCode }, goCodes);
});

test("closeAction and stopCode follow every row of the table, for every code from 0 to 5000", () => {
  const byCode = new Map<number, Row>();
  const ranges: { from: number; to: number; row: Row }[] = [];
  let otherwise: Row | undefined;
  for (const row of rows) {
    const range = /^other (\d+)[–-](\d+)$/.exec(row.label);
    if (/^\d+$/.test(row.label)) {
      byCode.set(Number(row.label), row);
    } else if (range !== null) {
      ranges.push({ from: Number(range[1]), to: Number(range[2]), row });
    } else if (row.label === "anything else") {
      otherwise = row;
    } else {
      assert.fail(`a row the test does not understand: ${row.label}`);
    }
  }
  assert.equal(ranges.length, 2, "the reconnect and stop classes");
  assert.ok(otherwise !== undefined, "a row for other codes");
  let checked = 0;
  for (let code = 0; code <= 5000; code++) {
    const row = byCode.get(code) ?? ranges.find((r) => code >= r.from && code <= r.to)?.row ?? otherwise;
    check(code, row);
    checked++;
  }
  assert.equal(checked, 5001);
});
