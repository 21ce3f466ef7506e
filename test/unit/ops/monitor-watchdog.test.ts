import assert from 'node:assert/strict'
import {existsSync, readFileSync} from 'node:fs'
import {afterEach, beforeEach, describe, test} from 'node:test'

import {type MonitorDeps, monitorInstance, runWatchdog, watchMonitor} from '../../../src/ops/index.js'
import {launch, readLaunchRecords} from '../../../src/vast/index.js'
import {CONFIG, type Harness, harness} from './helpers.js'

const TRAINING = ['[ups] onstart begins', 'Training started: run', '[operator] epoch 1/25 loss=0.0500 grad_norm=0.08', '[operator] epoch 2/25 loss=0.0400 grad_norm=0.07', '[operator] epoch 3/25 loss=0.0300 grad_norm=0.06']

async function launched(h: Harness, fields: Record<string, unknown>, log: string[]): Promise<number> {
  const r = await launch({configPath: CONFIG, gpu: 'RTX_4090', autoShutdown: true}, h.deps)
  const id = r.instanceId as number
  h.fake.update((s) => void Object.assign(s.instances.find((i) => i.id === id)!, {fields}))
  h.fake.writeLog(id, log.join('\n') + '\n')
  h.fake.advance(120) // past created/loading: running
  return id
}

describe('ups monitor against the fake', () => {
  let h: Harness
  let deps: MonitorDeps
  beforeEach(() => {
    h = harness()
    deps = {provider: h.provider, launchesFile: h.deps.launchesFile, now: h.deps.now, loadMonitorSettings: async () => undefined}
  })
  afterEach(() => h.cleanup())

  test('healthy run: exit 0, every MON-001 metric filled from the instance, the log and the launch record', async () => {
    const id = await launched(h, {gpu_util: 91, vmem_usage: 12}, TRAINING)
    h.fake.advance(3600 - 120)
    const r = await monitorInstance({}, deps)
    assert.equal(r.instanceId, id, 'newest launch when no id is given')
    assert.equal(r.overall, 'healthy')
    assert.equal(r.exitCode, 0)
    assert.equal(r.status, 'running')
    assert.equal(r.uptimeHours, 1)
    assert.equal(r.costUsd, 0.37)
    assert.equal(r.gpuMemPct, 48.8)
    assert.deepEqual([r.log.stage, r.log.epoch, r.log.epochs, r.log.loss, r.log.gradNorm], ['operator', 3, 25, 0.03, 0.06])
    const m = Object.fromEntries(r.metrics.map((x) => [x.key, x.rating]))
    assert.deepEqual(m, {
      status: 'healthy', uptime: null, cost: 'healthy', gpu_util: 'healthy', gpu_mem: 'healthy', gpu_temp: null, training_started: null,
      progress: null, operator_loss: 'healthy', grad_norm_op: 'healthy', diffusion_loss: null, grad_norm_diff: null, traceback: 'healthy', nan: 'healthy', oom: 'healthy',
    })
  })

  test('warning (exit 1) on low GPU use; thresholds from the config monitor section change it', async () => {
    const id = await launched(h, {gpu_util: 60}, TRAINING)
    const byRun = await monitorInstance({runId: (await readLaunchRecords(h.deps.launchesFile)).launches[0].run_id}, deps)
    assert.equal(byRun.instanceId, id)
    assert.equal(byRun.exitCode, 1)
    assert.equal(byRun.metrics.find((x) => x.key === 'gpu_util')?.rating, 'warning')
    const relaxed = await monitorInstance({instanceId: id}, {...deps, loadMonitorSettings: async () => ({gpu_util_warning_below: 55})})
    assert.equal(relaxed.exitCode, 0)
    assert.equal(relaxed.thresholdsFrom, CONFIG)
  })

  test('critical (exit 2) on a traceback, on OOM, on cost over 150%', async () => {
    const id = await launched(h, {gpu_util: 95}, [...TRAINING, 'Traceback (most recent call last):', '  File "x.py", line 1', 'RuntimeError: CUDA out of memory.'])
    const r = await monitorInstance({instanceId: id}, deps)
    assert.equal(r.exitCode, 2)
    assert.deepEqual(r.log.tracebacks, ['RuntimeError: CUDA out of memory.'])
    assert.equal(r.metrics.find((x) => x.key === 'oom')?.rating, 'critical')
    h.fake.writeLog(id, TRAINING.join('\n') + '\n')
    h.fake.advance(3 * 3600)
    const costly = await monitorInstance({instanceId: id}, deps)
    assert.equal(costly.metrics.find((x) => x.key === 'cost')?.rating, 'critical')
    assert.equal(costly.exitCode, 2)
  })

  test('still loading: a warning, GPU not rated yet; a destroyed instance is critical', async () => {
    const r = await launch({configPath: CONFIG, gpu: 'RTX_4090', autoShutdown: true}, h.deps)
    const loading = await monitorInstance({instanceId: r.instanceId!}, deps)
    assert.equal(loading.status, 'created')
    assert.equal(loading.exitCode, 1)
    assert.equal(loading.metrics.find((x) => x.key === 'gpu_util')?.rating, null)
    await h.provider.destroy(r.instanceId!)
    const gone = await monitorInstance({instanceId: r.instanceId!}, deps)
    assert.equal(gone.status, 'gone')
    assert.equal(gone.exitCode, 2)
  })

  test('--watch with a count gives that many reports, sleeping the interval between them', async () => {
    await launched(h, {gpu_util: 91}, TRAINING)
    const seen: number[] = []
    const last = await watchMonitor({}, {...deps, sleep: h.deps.sleep}, {intervalMs: 30_000, count: 3, onReport: (r) => seen.push(r.uptimeHours ?? -1)})
    assert.equal(seen.length, 3)
    assert.ok(seen[2] > seen[0], 'time moved by the interval between reports')
    assert.equal(last.exitCode, 0)
  })
})

describe('ups watchdog against the fake', () => {
  let h: Harness
  const events: string[] = []
  const wdeps = () => ({provider: h.provider, launchesFile: h.deps.launchesFile, now: h.deps.now, sleep: h.deps.sleep, cwd: h.dir, env: {}, onEvent: (m: string) => events.push(m)})
  beforeEach(() => {
    h = harness()
    events.length = 0
  })
  afterEach(() => h.cleanup())

  function assertStopped(id: number, logLike: RegExp) {
    const inst = h.fake.read().instances.find((i) => i.id === id)!
    assert.equal(inst.intended_status, 'stopped', 'stopped')
    assert.notEqual(inst.destroyed, true, 'never destroyed')
    assert.ok(h.calls().includes('stop instance'))
    assert.ok(!h.calls().includes('destroy instance'))
    assert.ok(events.some((e) => /STOPPING instance/.test(e)))
    return (logPath: string | null) => assert.match(readFileSync(logPath!, 'utf8'), logLike)
  }

  test('stops on a failure marker, after saving the log to incidents/', async () => {
    const id = await launched(h, {gpu_util: 95}, [...TRAINING, 'Training pipeline failed: stage operator'])
    const r = await runWatchdog({instanceId: id, intervalMs: 60_000}, wdeps())
    assert.equal(r.outcome, 'stopped')
    assert.equal(r.trigger, 'failure')
    assertStopped(id, /Training pipeline failed/)(r.logPath)
    assert.match(r.logPath!, /incidents\/\d{8}_\d{6}_\d+\/instance\.log$/)
    const rec = (await readLaunchRecords(h.deps.launchesFile)).launches[0]
    assert.equal(rec.status, 'stopped_by_watchdog')
  })

  test('stops on NaN in the loss', async () => {
    const id = await launched(h, {gpu_util: 95}, [...TRAINING, '[operator] epoch 4/25 loss=nan grad_norm=nan'])
    const r = await runWatchdog({instanceId: id, once: true}, wdeps())
    assert.equal(r.trigger, 'failure')
    assertStopped(id, /loss=nan/)(r.logPath)
  })

  test('stops when cost exceeds budget-factor x the estimate', async () => {
    const id = await launched(h, {gpu_util: 95}, TRAINING)
    h.fake.advance(2 * 3600 - 120) // $0.74 of a $0.72 estimate: under 1.5x
    assert.equal((await runWatchdog({instanceId: id, once: true}, wdeps())).outcome, 'ok')
    h.fake.advance(3600) // $1.10 > 1.5 x $0.72
    const r = await runWatchdog({instanceId: id, once: true}, wdeps())
    assert.equal(r.trigger, 'cost')
    assert.match(r.reason, /cost so far \$1\.10 exceeds 1\.5 x the estimate \$0\.72/)
    assertStopped(id, /Training started/)(r.logPath)
  })

  test('stops when the GPU idles under 50% for idle-minutes after training started, not before', async () => {
    const id = await launched(h, {gpu_util: 10}, TRAINING)
    const r = await runWatchdog({instanceId: id, intervalMs: 5 * 60_000, idleMinutes: 10, budgetFactor: 100}, wdeps())
    assert.equal(r.trigger, 'idle')
    assert.equal(r.polls, 3, 'idle at 0, 5 and 10 minutes')
    assertStopped(id, /Training started/)
  })

  test('does not count idle time before "Training started"', async () => {
    const id = await launched(h, {gpu_util: 0}, ['[ups] onstart begins', 'npm ci'])
    const r = await runWatchdog({instanceId: id, intervalMs: 5 * 60_000, idleMinutes: 10, maxPolls: 4}, wdeps())
    assert.equal(r.outcome, 'limit')
    assert.ok(!h.calls().includes('stop instance'))
  })

  test('stops when runtime exceeds --max-hours', async () => {
    const id = await launched(h, {gpu_util: 100}, TRAINING)
    h.fake.advance(3600)
    assert.equal((await runWatchdog({instanceId: id, maxHours: 2, budgetFactor: 100, once: true}, wdeps())).outcome, 'ok')
    h.fake.advance(1.5 * 3600)
    const r = await runWatchdog({instanceId: id, maxHours: 2, budgetFactor: 100, once: true}, wdeps())
    assert.equal(r.trigger, 'max_hours')
    assertStopped(id, /Training started/)
  })

  test('a healthy run is left alone and the watch ends when the instance stops by itself', async () => {
    const id = await launched(h, {gpu_util: 92}, TRAINING)
    let polls = 0
    const r = await runWatchdog({instanceId: id, intervalMs: 60_000}, {
      ...wdeps(),
      sleep: async (ms: number) => {
        h.fake.advance(ms / 1000)
        if (++polls === 3) h.fake.update((s) => void (s.instances[0].intended_status = 'stopped'))
      },
    })
    assert.equal(r.outcome, 'ended')
    assert.equal(r.polls, 4)
    assert.ok(!h.calls().includes('stop instance'))
    assert.ok(!existsSync(`${h.dir}/incidents`))
  })
})
