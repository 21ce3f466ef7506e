/**
 * 200 seeded mutations of a valid config (dropped keys, wrong types, random YAML damage):
 * the CLI must answer each with a clear verdict and exit 0, 1 or 2, never a stack trace.
 */
import assert from 'node:assert/strict'
import {readFile, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {test} from 'node:test'
import {stringify} from 'yaml'

import {hasStackTrace, REPO_ROOT, runCli, tempDir} from '../helpers.js'

function rng(seed: number) {
  let s = seed >>> 0
  return () => {
    s = (s + 0x6d2b79f5) >>> 0
    let t = s
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

type Obj = Record<string, unknown>

function paths(o: unknown, prefix: string[] = []): string[][] {
  if (typeof o !== 'object' || o === null || Array.isArray(o)) return [prefix]
  return [prefix, ...Object.entries(o).flatMap(([k, v]) => paths(v, [...prefix, k]))].filter((p) => p.length > 0)
}

function setAt(o: Obj, path: string[], value: unknown, remove = false) {
  let node = o
  for (const k of path.slice(0, -1)) node = node[k] as Obj
  if (remove) delete node[path.at(-1)!]
  else node[path.at(-1)!] = value
}

const WRONG_VALUES = ['x', -1, 0, 1e12, null, [], {}, true, [1, 'a'], {a: 1}, 3.5, '${missing.key}', '${env:UPS_FUZZ_UNSET}']
const DAMAGE = [':', '[', ']', '{', '}', "'", '"', '- ', '#', '&a', '*a', '!!', '|', '>', '%', '@', '`', '\t', '  ', '\n']

function mutate(base: Obj, seed: number): string {
  const r = rng(seed)
  const pick = <T>(xs: T[]) => xs[Math.floor(r() * xs.length)]
  const config = structuredClone(base)
  const kind = seed % 4
  if (kind === 0) setAt(config, pick(paths(config)), undefined, true)
  if (kind === 1) setAt(config, pick(paths(config)), pick(WRONG_VALUES))
  if (kind === 2) setAt(config, [...pick(paths(config)).slice(0, -1), `unknown_${seed}`], 1)
  let text = stringify(config)
  if (kind === 3 || r() < 0.3) {
    const pos = Math.floor(r() * text.length)
    const op = r()
    if (op < 0.4) text = text.slice(0, pos) + pick(DAMAGE) + text.slice(pos)
    else if (op < 0.7) text = text.slice(0, pos) + text.slice(pos + 1 + Math.floor(r() * 5))
    else text = text.slice(0, pos)
  }
  return text
}

test('200 mutated configs: exit 0/1/2 with a verdict, never a stack trace', {timeout: 600_000}, async (t) => {
  const dir = await tempDir(t)
  const shown = await runCli(['config', 'show', join(REPO_ROOT, 'configs/local_smoke.yaml'), '--json'])
  const base = JSON.parse(shown.stdout).config as Obj
  base.data = {...(base.data as Obj), root: dir}
  await readFile(join(REPO_ROOT, 'configs/local_smoke.yaml'))
  const codes: Record<number, number> = {}
  const seeds = Array.from({length: 200}, (_, i) => i + 1)
  const worker = async () => {
    for (let seed = seeds.shift(); seed !== undefined; seed = seeds.shift()) {
      const file = join(dir, `m${seed}.yaml`)
      await writeFile(file, mutate(base, seed))
      const json = seed % 5 === 0
      const r = await runCli(['validate', file, ...(json ? ['--json'] : [])], {env: {UPS_FUZZ_UNSET: ''}})
      codes[r.code] = (codes[r.code] ?? 0) + 1
      const out = r.stdout + r.stderr
      assert.ok([0, 1, 2].includes(r.code), `seed ${seed}: exit ${r.code}\n${out}`)
      assert.ok(!hasStackTrace(out), `seed ${seed}: stack trace\n${out}`)
      if (json) assert.doesNotThrow(() => JSON.parse(r.stdout), `seed ${seed}: --json output is not JSON\n${r.stdout}`)
      if (r.code === 2) assert.match(r.stderr + r.stdout, /Error|"error"/, `seed ${seed}: exit 2 without an error message`)
      if (r.code === 1) assert.match(out, /❌|"valid": false|"error"|^Error: /m, `seed ${seed}: exit 1 without a failed check`)
    }
  }
  await Promise.all([worker(), worker(), worker()])
  t.diagnostic(`exit codes: ${JSON.stringify(codes)}`)
  assert.ok((codes[1] ?? 0) > 20 && (codes[2] ?? 0) > 10, `the mutations should exercise both failure kinds: ${JSON.stringify(codes)}`)
})
