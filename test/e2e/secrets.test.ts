/**
 * Secrets as a user meets them: an instance log that prints WANDB_API_KEY and VAST_API_KEY while
 * this machine's environment holds neither value (redaction by name and shape, not by value);
 * `${env:...}` secrets in a config; hostile --config and --source values for `ups launch`.
 */
import assert from 'node:assert/strict'
import {copyFileSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {test} from 'node:test'

import {makeFakeVast} from '../fixtures/fake-vast.js'
import {REPO_ROOT, hasStackTrace, runCli, tempDir} from '../helpers.js'

const WANDB = '0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c'
const VAST = 'c0ffee0123456789abcdef0123456789abcdef0123456789abcdef0123456789'
const SHA = '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08'
const LOG = [
  '[ups 2025-03-01T10:00:00Z] onstart begins',
  `WANDB_API_KEY=${WANDB}`,
  `declare -x VAST_API_KEY="${VAST}"`,
  'run_20250301_100000_ab12: Training started',
  'operator epoch 1/25 loss=0.8123 grad_norm=0.12',
  `checkpoint operator_epoch1.bin sha256=${SHA}`,
  `operator epoch 2/25 loss=nan grad_norm=inf WANDB_API_KEY=${WANDB}`,
  `Training pipeline failed (VAST_API_KEY: ${VAST})`,
  '',
].join('\n')

const noSecret = (what: string, text: string) => {
  assert.ok(!text.includes(WANDB), `${what} holds the W&B key`)
  assert.ok(!text.includes(VAST), `${what} holds the Vast key`)
}

async function setup(t: import('node:test').TestContext) {
  const cwd = await tempDir(t, 'ups-e2e-secrets-')
  const fake = makeFakeVast({now: Math.floor(Date.parse('2025-03-01T12:00:00Z') / 1000)})
  t.after(() => fake.cleanup())
  const id = fake.addInstance({id: 31000005, ageSeconds: 7200})
  fake.writeLog(id, LOG)
  writeFileSync(join(fake.binDir, 'scp'), '#!/bin/sh\nexit 255\n', {mode: 0o755})
  const env = fake.env({UPS_HOME: join(cwd, 'home')})
  // The keys in the log are not this machine's: redaction cannot rely on their values.
  for (const k of ['UPS_VASTAI_BIN', 'WANDB_API_KEY', 'VAST_API_KEY']) delete env[k]
  return {cwd, env, id}
}

test('ups incident, instances logs and monitor never show keys printed in the instance log', async (t) => {
  const {cwd, env, id} = await setup(t)

  const inc = await runCli(['incident', String(id), '--json'], {cwd, env})
  assert.equal(inc.code, 0, inc.stderr)
  noSecret('incident --json', inc.stdout + inc.stderr)
  const folder = join(cwd, JSON.parse(inc.stdout).folder.replace(`${cwd}/`, ''))
  const files = readdirSync(folder).filter((f) => statSync(join(folder, f)).isFile()).sort()
  assert.deepEqual(files, ['classification.json', 'incident.json', 'instance.log', 'report.md'])
  for (const f of files) {
    noSecret(f, readFileSync(join(folder, f), 'utf8'))
    assert.equal(statSync(join(folder, f)).mode & 0o777, 0o600, `${f} mode`)
  }
  const saved = readFileSync(join(folder, 'instance.log'), 'utf8')
  assert.match(saved, /WANDB_API_KEY=\[REDACTED\]/)
  assert.ok(saved.includes(`sha256=${SHA}`), 'the checkpoint hash survives')
  const again = await runCli(['incident', String(id)], {cwd, env})
  assert.equal(again.code, 0, again.stderr)
  noSecret('incident (text)', again.stdout + again.stderr)

  for (const args of [['instances', 'logs', String(id)], ['instances', 'logs', String(id), '--json'], ['instances', 'logs', String(id), '--tail', '3']]) {
    const r = await runCli(args, {cwd, env})
    assert.equal(r.code, 0, r.stderr)
    noSecret(args.join(' '), r.stdout + r.stderr)
  }
  const logs = await runCli(['instances', 'logs', String(id)], {cwd, env})
  assert.ok(logs.stdout.includes(SHA))

  for (const args of [['monitor', String(id)], ['monitor', String(id), '--json']]) {
    const r = await runCli(args, {cwd, env})
    assert.ok(r.code !== null && r.code <= 2, r.stderr)
    assert.ok(/NaN|nan/.test(r.stdout), r.stdout)
    noSecret(args.join(' '), r.stdout + r.stderr)
  }
})

test('config show and the run dir keep ${env:NAME} instead of a secret from the environment', async (t) => {
  const cwd = await tempDir(t, 'ups-e2e-secrets-config-')
  mkdirSync(join(cwd, 'configs'))
  for (const f of ['train_burgers_32dim.yaml', 'defaults.yaml']) copyFileSync(join(REPO_ROOT, 'configs', f), join(cwd, 'configs', f))
  writeFileSync(join(cwd, 'configs', 'keyed.yaml'), 'include: train_burgers_32dim.yaml\nlogging:\n  wandb:\n    notes: "vast ${env:VAST_API_KEY}"\n    group: ${env:WANDB_API_KEY}\n')
  const env = {VAST_API_KEY: VAST, WANDB_API_KEY: WANDB}
  const text = await runCli(['config', 'show', 'configs/keyed.yaml'], {cwd, env})
  assert.equal(text.code, 0, text.stderr)
  noSecret('config show', text.stdout + text.stderr)
  assert.match(text.stdout, /notes: vast \$\{env:VAST_API_KEY\}/)
  const json = await runCli(['config', 'show', 'configs/keyed.yaml', '--json'], {cwd, env})
  assert.equal(json.code, 0, json.stderr)
  noSecret('config show --json', json.stdout)
  assert.equal(JSON.parse(json.stdout).config.logging.wandb.group, '${env:WANDB_API_KEY}')
})

test('ups launch refuses a config path with a newline and a --source with a token, without echoing the token', async (t) => {
  const cwd = await tempDir(t, 'ups-e2e-secrets-launch-')
  mkdirSync(join(cwd, 'configs'))
  for (const f of ['train_burgers_32dim.yaml', 'defaults.yaml']) copyFileSync(join(REPO_ROOT, 'configs', f), join(cwd, 'configs', f))
  const evil = 'configs/x\ntouch PWNED\n.yaml'
  copyFileSync(join(cwd, 'configs', 'train_burgers_32dim.yaml'), join(cwd, evil))
  const fake = makeFakeVast()
  t.after(() => fake.cleanup())
  const env = fake.env({UPS_HOME: join(cwd, 'home')})
  delete env.UPS_VASTAI_BIN
  const base = ['launch', '--gpu', 'RTX_4090', '--dry-run']

  const nl = await runCli([...base, '--config', evil, '--source', 'git:https://example.org/acme/ups.git#main'], {cwd, env})
  assert.equal(nl.code, 2, nl.stdout + nl.stderr)
  assert.match(nl.stderr, /training config path contains a control character/)
  assert.ok(!hasStackTrace(nl.stderr))

  const token = 'ghp_' + 'Z9y8X7w6V5'.repeat(4)
  for (const url of [`https://${token}@github.com/acme/ups.git`, `https://x-access-token:${token}@github.com/acme/ups.git`]) {
    const r = await runCli([...base, '--config', 'configs/train_burgers_32dim.yaml', '--source', `git:${url}#main`, '--json'], {cwd, env})
    assert.equal(r.code, 2, r.stdout + r.stderr)
    assert.equal(JSON.parse(r.stdout).error.code, 'LAUNCH_BAD_SOURCE')
    assert.ok(!(r.stdout + r.stderr).includes(token))
  }
  assert.equal(fake.read().instances.length, 0)
})
