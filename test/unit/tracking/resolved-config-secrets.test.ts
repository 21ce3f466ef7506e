import assert from 'node:assert/strict'
import {readFile} from 'node:fs/promises'
import {join} from 'node:path'
import {test} from 'node:test'

import {loadRawConfig} from '../../../src/config/index.js'
import {createRunDir, runDirAt, writeResolvedConfig} from '../../../src/tracking/rundir.js'
import {tempDir} from '../../helpers.js'

const KEY = 'c0ffee0123456789abcdef0123456789abcdef0123456789abcdef0123456789'

test('config.resolved.yaml holds ${env:NAME} for a secret from the environment, and reloads to the value', async (t) => {
  const root = await tempDir(t, 'ups-resolved-secrets-')
  const env = {VAST_API_KEY: KEY}
  const raw = (await loadRawConfig('c.yaml', {deps: {cwd: root, env, readFile: async () => 'seed: 1\nlogging:\n  wandb:\n    notes: "k=${env:VAST_API_KEY}"\n'}})).raw
  assert.equal((raw.logging as {wandb: {notes: string}}).wandb.notes, `k=${KEY}`)

  const dir = runDirAt(join(root, 'run_20250101_000000_abcd'))
  await writeResolvedConfig(dir, raw, env)
  const text = await readFile(dir.paths.config, 'utf8')
  assert.ok(!text.includes(KEY), text)
  assert.match(text, /notes: k=\$\{env:VAST_API_KEY\}/)
  // Resume reloads the file: the same environment gives the same value back.
  const again = (await loadRawConfig(dir.paths.config, {deps: {cwd: root, env}})).raw
  assert.deepEqual(again, raw)

  // createRunDir writes through the same path, with the process environment.
  const saved = process.env.VAST_API_KEY
  process.env.VAST_API_KEY = KEY
  t.after(() => (saved === undefined ? delete process.env.VAST_API_KEY : (process.env.VAST_API_KEY = saved)))
  const created = await createRunDir(join(root, 'runs'), 'run_20250101_000001_abcd', {config: raw})
  assert.ok(!(await readFile(created.paths.config, 'utf8')).includes(KEY))
})
