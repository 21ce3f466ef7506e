import assert from 'node:assert/strict'
import {spawnSync} from 'node:child_process'
import {copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, test} from 'node:test'

import {type FakeVast, makeFakeVast} from '../fixtures/fake-vast.js'
import {CLI, REPO_ROOT, hasStackTrace} from '../helpers.js'

const KEY = 'vk_e2e_secret_abcdef0123456789'
const WANDB = 'wandb_e2e_secret_0123456789'
const SOURCE = 'git:https://example.org/acme/ups.git#0123456789abcdef'

describe('ups launch / monitor / watchdog / recover as a user runs them (fake vastai on PATH)', () => {
  let fake: FakeVast
  let work: string
  let home: string
  let id: number
  before(() => {
    fake = makeFakeVast({apiKey: KEY, lifecycle: {created: 10, loading: 30}})
    work = mkdtempSync(join(tmpdir(), 'ups-e2e-launch-'))
    home = join(work, 'home')
    mkdirSync(join(work, 'configs'))
    for (const f of ['train_burgers_32dim.yaml', 'defaults.yaml']) copyFileSync(join(REPO_ROOT, 'configs', f), join(work, 'configs', f))
    // The config's $10 budget is below its calibrated GPU estimate (a dispatch-bound step of ~3,900
    // kernels, ~$32 on an RTX 4090): launch and recover run under a larger one; the over-budget test lowers it.
    const cfg = join(work, 'configs', 'train_burgers_32dim.yaml')
    writeFileSync(cfg, readFileSync(cfg, 'utf8').replace('budget_usd: 10', 'budget_usd: 1000'))
    spawnSync('git', ['init', '-q', '.'], {cwd: work})
  })
  after(() => {
    fake.cleanup()
    rmSync(work, {recursive: true, force: true})
  })

  function ups(args: string[]) {
    const env = fake.env({VAST_API_KEY: KEY, WANDB_API_KEY: WANDB, UPS_HOME: home})
    delete env.UPS_VASTAI_BIN
    const r = spawnSync(process.execPath, [CLI, ...args], {cwd: work, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe']})
    return {code: r.status, stdout: r.stdout, stderr: r.stderr, json: () => JSON.parse(r.stdout)}
  }
  const base = ['--config', 'configs/train_burgers_32dim.yaml', '--gpu', 'RTX_4090', '--source', SOURCE, '--auto-shutdown']

  test('launch --dry-run --json: the plan, a masked command, the script; nothing created or recorded', () => {
    const r = ups(['launch', ...base, '--dry-run', '--json'])
    assert.equal(r.code, 0, r.stderr)
    const out = r.json()
    assert.equal(out.dryRun, true)
    assert.equal(out.instanceId, null)
    assert.match(out.command, /--env '-e NVIDIA_DRIVER_CAPABILITIES=\*\*\* -e WANDB_API_KEY=\*\*\*'/)
    assert.match(out.onstart.plain, /ups run --train-config configs\/train_burgers_32dim\.yaml --run-id=run_/)
    assert.ok(!r.stdout.includes(WANDB) && !r.stderr.includes(WANDB))
    assert.equal(fake.read().instances.length, 0)
    assert.ok(!existsSync(join(home, 'launches.jsonl')))
  })

  test('launch over budget: exit 1 with the amount and what to change', () => {
    const r = ups(['launch', ...base, '--budget', '0.1'])
    assert.equal(r.code, 1)
    assert.match(r.stderr, /over the budget of \$0\.10 by \$\d+\.\d\d/)
    assert.match(r.stderr, /Hint: Raise --budget/)
    assert.ok(!hasStackTrace(r.stderr))
  })

  test('launch: prints instance and run id, records the launch', () => {
    const r = ups(['launch', ...base, '--label', 'e2e'])
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, /Run id:\s+run_\d{8}_\d{6}_[0-9a-f]{4}/)
    const m = /Instance:\s+(\d+)/.exec(r.stdout)
    id = Number(m![1])
    const lines = readFileSync(join(home, 'launches.jsonl'), 'utf8').trim().split('\n')
    assert.equal(lines.length, 1)
    assert.equal(JSON.parse(lines[0]).instance_id, id)
    assert.equal(fake.read().instances[0].label, 'e2e')
  })

  test('monitor: exit 1 while loading, exit 0 once training runs healthily, exit 2 on a traceback', () => {
    const loading = ups(['monitor', '--json'])
    assert.equal(loading.code, 1, loading.stderr)
    assert.equal(loading.json().status, 'created')
    fake.advance(600)
    fake.update((s) => void (s.instances[0].fields = {gpu_util: 88}))
    fake.writeLog(id, 'Training started\n[operator] epoch 1/25 loss=0.05 grad_norm=0.1\n[operator] epoch 2/25 loss=0.04 grad_norm=0.1\n')
    const ok = ups(['monitor', String(id)])
    assert.equal(ok.code, 0, ok.stdout + ok.stderr)
    assert.match(ok.stdout, /HEALTHY/)
    assert.match(ok.stdout, /OK\s+GPU utilisation\s+88%/)
    fake.writeLog(id, 'Training started\nTraceback (most recent call last):\n  File "x", line 1\nValueError: dimension mismatch\n')
    const bad = ups(['monitor', String(id), '--watch', '--count', '2', '--interval', '1'])
    assert.equal(bad.code, 2)
    assert.equal(bad.stdout.match(/CRITICAL/g)?.length, 2, 'two plain blocks off a terminal')
  })

  test('watchdog --once stops (never destroys) the failing instance, saving its log; exit 1', () => {
    const r = ups(['watchdog', String(id), '--once'])
    assert.equal(r.code, 1, r.stderr)
    assert.match(r.stdout, /STOPPING instance \d+: failure marker in the log: ValueError: dimension mismatch/)
    const inst = fake.read().instances[0]
    assert.equal(inst.intended_status, 'stopped')
    assert.notEqual(inst.destroyed, true)
    const [dir] = readdirSync(join(work, 'incidents'))
    assert.match(readFileSync(join(work, 'incidents', dir, 'instance.log'), 'utf8'), /dimension mismatch/)
  })

  test('recover: refuses without --yes off a terminal; --dry-run shows the plan', () => {
    const refused = ups(['recover', String(id)])
    assert.equal(refused.code, 2)
    assert.match(refused.stderr, /Refusing to destroy/)
    const plan = ups(['recover', String(id), '--dry-run'])
    assert.equal(plan.code, 0, plan.stderr)
    assert.match(plan.stdout, /ups resume run_/)
    assert.notEqual(fake.read().instances[0].destroyed, true)
  })

  test('launch: a create that hangs past the client\'s timeout after Vast created the instance is found by its label, once', () => {
    const before = fake.read().instances.length
    const creates = () => (fake.read().requests ?? []).filter((q) => q.command === 'create instance').length
    const sent = creates()
    // The request hangs, then the client's read timeout fires; Vast had already created the instance.
    fake.update((s) => void (s.faults = [{command: 'create instance', timeout: 1, applied: true, times: 1}]))
    const r = ups(['launch', ...base, '--json'])
    assert.equal(r.code, 0, r.stderr)
    const made = fake.read().instances.slice(before)
    assert.equal(made.length, 1, 'one instance: the create was not sent again')
    assert.equal(creates() - sent, 1)
    assert.match(String(made[0].label), /^ups-run_\d{8}_\d{6}_[0-9a-f]{4}-[0-9a-f]{4}$/)
    const out = r.json()
    assert.equal(out.instanceId, made[0].id)
    assert.ok(out.warnings.some((w: string) => /found by its label and adopted/.test(w)))
    const records = readFileSync(join(home, 'launches.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l))
    assert.ok(records.some((x) => x.kind === 'launch' && x.instance_id === made[0].id && x.adopted === true))
    id = made[0].id as number
  })

  test('instances destroy notes the destroy on the launch record; cost then prices the launch to that moment', () => {
    const r = ups(['instances', 'destroy', String(id), '--yes', '--json'])
    assert.equal(r.code, 0, r.stderr)
    assert.deepEqual(r.json(), {id, action: 'destroy', ok: true, recorded: true})
    const last = JSON.parse(readFileSync(join(home, 'launches.jsonl'), 'utf8').trim().split('\n').at(-1)!)
    assert.equal(last.kind, 'update')
    assert.equal(last.instance_id, id)
    assert.equal(last.status, 'destroyed')
    assert.equal(last.destroyed_by, 'ups instances destroy')
    const cost = ups(['cost', '--json'])
    assert.equal(cost.code, 0, cost.stderr)
    const launch = cost.json().launches.find((l: {instanceId: number}) => l.instanceId === id)
    assert.equal(launch.endBasis, 'record')
    assert.equal(launch.endedAt, new Date(Date.parse(last.at)).toISOString())
  })
})
