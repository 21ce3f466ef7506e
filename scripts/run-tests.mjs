#!/usr/bin/env node
// Runs every test file under test/ with node's test runner through tsx.
// (Node 20's --test does not expand globs itself.) Pass paths or name fragments to run fewer.
import {spawnSync} from 'node:child_process'
import {readdirSync, statSync} from 'node:fs'
import {join} from 'node:path'

function find(dir) {
  const out = []
  for (const name of readdirSync(dir)) {
    const path = join(dir, name)
    if (statSync(path).isDirectory()) {
      if (name !== 'fixtures') out.push(...find(path))
    } else if (name.endsWith('.test.ts')) out.push(path)
  }
  return out
}

const filters = process.argv.slice(2)
let files = find('test').sort()
if (filters.length > 0) files = files.filter((f) => filters.some((s) => f.includes(s)))
if (files.length === 0) {
  console.error(`No test files match ${filters.join(' ')}`)
  process.exit(2)
}
const result = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-concurrency=2', '--test-reporter=spec', ...files],
  {stdio: 'inherit'},
)
process.exit(result.status ?? 1)
