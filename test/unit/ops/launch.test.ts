import assert from 'node:assert/strict'
import {existsSync, readFileSync, readdirSync} from 'node:fs'
import {join} from 'node:path'
import {afterEach, beforeEach, describe, test} from 'node:test'

import {UserError} from '../../../src/util/errors.js'
import {DEFAULT_IMAGE, type LaunchOptions, launch, readLaunchRecords} from '../../../src/vast/index.js'
import {HEAD, type Harness, CONFIG, ORIGIN, WANDB_KEY, harness} from './helpers.js'

const base: LaunchOptions = {configPath: CONFIG, gpu: 'RTX_4090', autoShutdown: true, runArgs: ['--wandb-run-name=b32']}

describe('ups launch against the fake vastai', () => {
  let h: Harness
  beforeEach(() => (h = harness()))
  afterEach(() => h.cleanup())

  test('creates the instance with the image, disk, env and onstart; records the launch', async () => {
    const r = await launch(base, h.deps)
    assert.equal(r.runId, 'run_20251128_171320_beef')
    const inst = h.fake.read().instances.find((i) => i.id === r.instanceId)!
    assert.equal(inst.image, DEFAULT_IMAGE)
    assert.equal(inst.disk, 64)
    assert.deepEqual(inst.env, {NVIDIA_DRIVER_CAPABILITIES: 'compute,utility,graphics', WANDB_API_KEY: WANDB_KEY})
    assert.equal(inst.label, `ups-${r.runId}-beef`, 'unique per launch: run id and a random part')
    const onstart = inst.onstart as string
    assert.equal(onstart, r.onstart.script)
    assert.ok(!onstart.includes(WANDB_KEY), 'the secret is not in the script')
    const plain = r.onstart.plain
    assert.match(plain, new RegExp(`git remote add origin ${ORIGIN.replace(/\./g, '\\.')}`))
    assert.match(plain, new RegExp(`REF=${HEAD}`))
    assert.match(plain, new RegExp(`ups run --train-config configs/train_burgers_32dim\\.yaml --wandb-run-name=b32 --run-id=${r.runId}`))
    assert.match(plain, /AUTO_SHUTDOWN=1/)
    assert.ok(!/ups sync/.test(plain), 'no W&B sync when the config does not enable W&B')
    // the cheapest RTX 4090 offer that satisfies the config's reliability/disk and CUDA >= 11.2
    assert.equal(r.offer.id, 5001001)
    const {launches} = await readLaunchRecords(h.deps.launchesFile)
    assert.equal(launches.length, 1)
    const rec = launches[0]
    assert.equal(rec.instance_id, r.instanceId)
    assert.equal(rec.run_id, r.runId)
    assert.equal(rec.config_path, CONFIG)
    assert.match(rec.config_hash, /^[0-9a-f]{16}$/)
    assert.equal(rec.dph_total, 0.3679)
    assert.equal(rec.estimate.source, 'test estimate')
    assert.deepEqual(rec.source, {git_url: ORIGIN, ref: HEAD, dirty: false})
    assert.equal(rec.started_at, '2025-11-28T17:13:20.000Z')
    assert.equal(rec.label, `ups-${r.runId}-beef`)
  })

  test('--dry-run returns the masked command and the script and touches nothing', async () => {
    const r = await launch({...base, dryRun: true}, h.deps)
    assert.equal(r.instanceId, null)
    assert.deepEqual(h.calls(), ['search offers'], 'only the read-only offer search ran')
    assert.ok(!existsSync(h.deps.launchesFile), 'no launch record')
    assert.match(r.command, /^vastai create instance 5001001 --image nvidia\/cuda:11\.2\.2-cudnn8-runtime-ubuntu20\.04 --disk 64 --env '-e NVIDIA_DRIVER_CAPABILITIES=\*\*\* -e WANDB_API_KEY=\*\*\*' --onstart-cmd "\$\(cat onstart\.sh\)" --label ups-run_\S+ --retry 1 --raw$/)
    assert.ok(!r.command.includes(WANDB_KEY))
    assert.match(r.onstart.plain, /^#!\/bin\/bash/)
  })

  test('with W&B enabled, the exit trap uploads what the mirror could not send (ups sync RUN) before stopping', async () => {
    const r = await launch({...base, overrides: ['logging.wandb.enabled=true']}, h.deps)
    assert.match(r.onstart.plain, new RegExp(`ups sync ${r.runId} \\|\\| log`))
  })

  test('refuses over budget (exit 1) before searching or renting, saying by how much', async () => {
    await assert.rejects(launch({...base, budgetUsd: 0.5}, h.deps), (e: UserError) => {
      assert.equal(e.code, 'LAUNCH_OVER_BUDGET')
      assert.equal(e.exitCode, 1)
      assert.match(e.message, /test estimate .* is \$0\.78, over the budget of \$0\.50 by \$0\.28/)
      assert.match(e.hint ?? '', /--budget .*vast\.budget_usd/)
      return true
    })
    assert.deepEqual(h.calls(), [])
    assert.ok(!existsSync(h.deps.launchesFile))
  })

  test('refuses when the chosen offer makes it over budget', async () => {
    h.fake.update((s) => void (s.offers[0].dph_total = 0.45))
    await assert.rejects(launch({...base, budgetUsd: 0.8}, h.deps), (e: UserError) => e.code === 'LAUNCH_OVER_BUDGET' && /offer 5001001/.test(e.message))
    assert.deepEqual(h.calls(), ['search offers'])
  })

  test('refuses a dirty tree (exit 2, hint) unless --allow-dirty', async () => {
    h.setDirty(true)
    await assert.rejects(launch(base, h.deps), (e: UserError) => {
      assert.equal(e.code, 'LAUNCH_DIRTY_TREE')
      assert.equal(e.exitCode, 2)
      assert.match(e.hint ?? '', /--allow-dirty/)
      return true
    })
    assert.deepEqual(h.calls(), [])
    const r = await launch({...base, allowDirty: true}, h.deps)
    assert.ok(r.instanceId)
    assert.equal((await readLaunchRecords(h.deps.launchesFile)).launches[0].source.dirty, true)
  })

  test('--source skips the checkout and --offer-id rents that offer', async () => {
    const r = await launch({...base, source: 'git:https://example.org/x.git#v1.2', offerId: 5001002, dryRun: true}, h.deps)
    assert.equal(r.offer.id, 5001002)
    assert.deepEqual(r.source, {gitUrl: 'https://example.org/x.git', ref: 'v1.2', dirty: false, from: 'flag'})
    assert.ok(!h.gitCalls.some((a) => a[0] === 'status'))
  })

  test('--wait succeeds once the instance runs and logs "Training started"', async () => {
    let sleeps = 0
    const deps = {...h.deps, sleep: async (ms: number) => {
      h.fake.advance(ms / 1000)
      if (++sleeps === 4) h.fake.writeLog(31000001, 'npm ci\n[ups] Training started: run\n')
    }}
    const r = await launch({...base, wait: true, waitTimeoutMs: 600_000, waitIntervalMs: 15_000}, deps)
    assert.equal(r.verified?.status, 'running')
    assert.match(r.verified!.line, /Training started/)
    assert.ok(h.fake.read().instances[0].destroyed !== true)
  })

  test('--wait rolls back when the instance never runs: logs saved, destroyed, exit 1', async () => {
    h.fake.update((s) => void (s.createDefaults = {stuck: 'loading'}))
    h.fake.writeLog(31000001, 'Pulling image\nerror: manifest unknown\n')
    await assert.rejects(launch({...base, wait: true, waitTimeoutMs: 120_000}, h.deps), (e: UserError) => {
      assert.equal(e.code, 'LAUNCH_ROLLED_BACK')
      assert.equal(e.exitCode, 1)
      assert.match(e.message, /did not reach running .*last status: loading/)
      assert.match(e.message, /instance 31000001 destroyed/)
      const log = readFileSync(e.details!.logPath as string, 'utf8')
      assert.match(log, /manifest unknown/)
      assert.match(e.details!.logPath as string, /incidents\/\d{8}_\d{6}_31000001\/instance\.log$/)
      return true
    })
    assert.equal(h.fake.read().instances[0].destroyed, true)
    const rec = (await readLaunchRecords(h.deps.launchesFile)).launches[0]
    assert.equal(rec.status, 'rolled_back')
  })

  test('--wait rolls back when it runs but never logs "Training started"', async () => {
    h.fake.writeLog(31000001, 'npm ci\nnpm ERR! code E404\n')
    await assert.rejects(launch({...base, wait: true, waitTimeoutMs: 60_000}, h.deps), (e: UserError) => {
      assert.equal(e.code, 'LAUNCH_ROLLED_BACK')
      assert.match(e.message, /no line matching \/Training started\//)
      assert.match(readFileSync(e.details!.logPath as string, 'utf8'), /E404/)
      return true
    })
    assert.equal(h.fake.read().instances[0].destroyed, true)
    assert.equal(readdirSync(join(h.dir, 'incidents')).length, 1)
  })

  test('--watchdog starts the watchdog and records its pid', async () => {
    const started: number[] = []
    const r = await launch({...base, watchdog: true}, {...h.deps, spawnWatchdog: async (id) => (started.push(id), 4242)})
    assert.deepEqual(started, [r.instanceId])
    assert.equal(r.watchdogPid, 4242)
    assert.equal((await readLaunchRecords(h.deps.launchesFile)).launches[0].watchdog_pid, 4242)
  })

  test('an invalid config is refused before anything else (exit 1)', async () => {
    await assert.rejects(launch({...base, overrides: ['operator.pdet.num_heads=5']}, h.deps), (e: UserError) => e.code === 'CONFIG_INVALID' && e.exitCode === 1)
    assert.deepEqual(h.calls(), [])
  })
})
