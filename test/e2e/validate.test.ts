import assert from 'node:assert/strict'
import {join} from 'node:path'
import {test} from 'node:test'

import {hasStackTrace, REPO_ROOT, runCli, tempDir, writeFiles} from '../helpers.js'

const SHIPPED = ['defaults', 'train_burgers_32dim', 'small_eval_burgers_32dim', 'full_eval_burgers_32dim', 'local_smoke']

test('every shipped config passes ups validate (data not required in CI mode)', async () => {
  for (const name of SHIPPED) {
    const r = await runCli(['validate', `configs/${name}.yaml`, '--no-data'])
    assert.equal(r.code, 0, `${name}: ${r.stdout}${r.stderr}`)
    assert.match(r.stdout, /Results: (\d+)\/\1 checks passed|Results: \d+\/\d+ checks passed \(\d+ warning/)
    assert.match(r.stdout, /✅ Config is valid and ready for training!/)
  }
})

test('the main config passes every check, with no warning, when its data exists', async (t) => {
  const dir = await tempDir(t)
  await writeFiles(dir, {'pdebench/.keep': ''})
  const r = await runCli(['validate', 'configs/train_burgers_32dim.yaml', '--strict', '--set', `data.root=${join(dir, 'pdebench')}`])
  assert.equal(r.code, 0, r.stdout)
  const [, passed, total] = r.stdout.match(/Results: (\d+)\/(\d+) checks passed \(0 warnings, 0 failed/) ?? []
  assert.ok(passed && passed === total, r.stdout)
})

test('a missing data root fails the check and names the fix', async () => {
  const r = await runCli(['validate', 'configs/train_burgers_32dim.yaml', '--set', 'data.root=/nonexistent/pdebench'])
  assert.equal(r.code, 1)
  assert.match(r.stdout, /❌ data\.root exists \[data\.root_exists\]: \/nonexistent\/pdebench does not exist; fetch the data/)
  assert.match(r.stdout, /❌ Config is invalid/)
})

test('--json lists every check with a stable id and exits 1 on failure', async (t) => {
  const dir = await tempDir(t)
  await writeFiles(dir, {'c.yaml': `include: ${join(REPO_ROOT, 'configs/local_smoke.yaml')}\noperator:\n  pdet:\n    group_size: 7\n`})
  const r = await runCli(['validate', join(dir, 'c.yaml'), '--json'])
  assert.equal(r.code, 1)
  const result = JSON.parse(r.stdout)
  assert.equal(result.valid, false)
  const failed = result.checks.filter((c: {status: string}) => c.status === 'fail').map((c: {id: string}) => c.id)
  assert.deepEqual(failed, ['arch.group_size_divides_hidden', 'arch.heads_divide_group_size'])
  assert.ok(result.checks.length >= 30)
  assert.equal(result.summary.failed, 2)
})

test('warnings pass by default and fail with --strict', async (t) => {
  const dir = await tempDir(t)
  await writeFiles(dir, {'c.yaml': `include: ${join(REPO_ROOT, 'configs/local_smoke.yaml')}\ntraining:\n  batch_sise: 3\n`})
  const relaxed = await runCli(['validate', join(dir, 'c.yaml')])
  assert.equal(relaxed.code, 0, relaxed.stdout)
  assert.match(relaxed.stdout, /c\.yaml:3:3: unknown key training\.batch_sise \(did you mean training\.batch_size\?\)/)
  const strict = await runCli(['validate', join(dir, 'c.yaml'), '--strict'])
  assert.equal(strict.code, 1)
  assert.match(strict.stdout, /--strict treats them as failures/)
})

test('a wrong type names the key path and YAML line; exit 1', async (t) => {
  const dir = await tempDir(t)
  await writeFiles(dir, {'c.yaml': `include: ${join(REPO_ROOT, 'configs/local_smoke.yaml')}\nlatent:\n  tokens: many\n`})
  const r = await runCli(['validate', join(dir, 'c.yaml')])
  assert.equal(r.code, 1)
  assert.match(r.stdout, /c\.yaml:3:3: latent\.tokens: expected number, got "many"/)
})

test('an unparsable or missing config exits 2 with file:line:column and no stack trace', async (t) => {
  const dir = await tempDir(t)
  await writeFiles(dir, {'broken.yaml': 'data:\n  task: [burgers1d\nlatent: {dim: 3}\n'})
  const broken = await runCli(['validate', join(dir, 'broken.yaml')])
  assert.equal(broken.code, 2)
  assert.match(broken.stderr, /^Error: .*broken\.yaml:\d+:\d+: YAML syntax error/m)
  assert.match(broken.stderr, /^Hint: /m)
  assert.ok(!hasStackTrace(broken.stderr), broken.stderr)
  const missing = await runCli(['validate', join(dir, 'nope.yaml')])
  assert.equal(missing.code, 2)
  assert.match(missing.stderr, /nope\.yaml does not exist/)
  const json = await runCli(['validate', join(dir, 'nope.yaml'), '--json'])
  assert.equal(json.code, 2, 'the exit code is the same under --json')
  assert.equal(JSON.parse(json.stdout).error.code, 'FS_ENOENT')
  const verbose = await runCli(['validate', join(dir, 'broken.yaml'), '--verbose'])
  assert.ok(hasStackTrace(verbose.stderr), '--verbose shows the stack')
})

test('usage errors exit 2: no argument, unknown flag, bad --set', async () => {
  assert.equal((await runCli(['validate'])).code, 2)
  assert.equal((await runCli(['validate', 'configs/local_smoke.yaml', '--bogus'])).code, 2)
  const badSet = await runCli(['validate', 'configs/local_smoke.yaml', '--set', 'nokey'])
  assert.equal(badSet.code, 2)
  assert.match(badSet.stderr, /expected KEY\.PATH=VALUE/)
})

test('config show prints the resolved config with overrides and interpolation', async () => {
  const r = await runCli(['config', 'show', 'configs/small_eval_burgers_32dim.yaml', '--set', 'seed=9', '--json'])
  assert.equal(r.code, 0, r.stderr)
  const out = JSON.parse(r.stdout)
  assert.equal(out.config.data.split, 'val')
  assert.equal(out.config.latent.dim, 32)
  assert.equal(out.config.logging.wandb.run_name, 'burgers32-9')
  assert.equal(out.files.length, 3)
  assert.match(out.hash, /^[0-9a-f]{16}$/)
  const schema = JSON.parse((await runCli(['config', 'schema'])).stdout)
  assert.equal(schema.properties.latent.properties.dim.description, 'Channels per latent token.')
})
