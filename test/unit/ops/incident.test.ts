import assert from 'node:assert/strict'
import {mkdir, readFile, readdir, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {test} from 'node:test'

import {classifyLog} from '../../../src/ops/log-classify.js'
import {openIncident, type CopyRequest, type IncidentDeps} from '../../../src/ops/incident.js'
import {VastCli, VastProvider} from '../../../src/vast/index.js'
import {makeFakeVast, type FakeVast} from '../../fixtures/fake-vast.js'
import {tempDir} from '../../helpers.js'
import {CLEAN_LOG, MISMATCH_LOG, NAN_LOG, OOM_LOG, TRACEBACK_LOG} from './logs.js'

test('classifier: OOM, mismatch, NaN, unknown traceback (Python and JS), none', () => {
  const oom = classifyLog(OOM_LOG)
  assert.equal(oom.cause, 'oom')
  assert.equal(oom.batchSize, 16)
  assert.match(oom.action, /training\.batch_size 16 -> 8/)
  assert.equal(classifyLog(OOM_LOG, {batchSize: 12}).batchSize, 12)
  assert.ok(oom.evidence.some((e) => /CUDA out of memory/.test(e.text)))

  for (const line of [
    'tensorflow.python.framework.errors_impl.ResourceExhaustedError: OOM when allocating tensor with shape[64,32,1024]',
    '2025-03-01 W tensorflow: RESOURCE_EXHAUSTED: failed to allocate memory',
    'RangeError: WebAssembly.Memory.grow(): Maximum memory size exceeded',
    'Aborted(OOM). Build with -sASSERTIONS for more info.',
    'FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory',
  ]) assert.equal(classifyLog(`epoch 1\n${line}\n`).cause, 'oom', line)
  assert.equal(classifyLog('epoch 1 loss=0.2 nan_count=0 info: done\n').cause, 'none')

  const mm = classifyLog(MISMATCH_LOG)
  assert.equal(mm.cause, 'shape_mismatch')
  assert.match(mm.action, /ups validate/)
  assert.equal(mm.traceback?.language, 'javascript')
  assert.deepEqual(mm.traceback?.frames.map((f) => f.function), ['runStage', 'trainStep'])

  const nan = classifyLog(NAN_LOG)
  assert.equal(nan.cause, 'nan')
  assert.match(nan.action, /Lower the learning rate.*gradient clipping/)
  assert.deepEqual(nan.evidence.map((e) => e.line), [7, 8])

  const tb = classifyLog(TRACEBACK_LOG)
  assert.equal(tb.cause, 'traceback')
  assert.equal(tb.traceback?.exception, "KeyError: 'files'")
  // The json library frame is dropped; the project frames remain, innermost last.
  assert.deepEqual(tb.traceback?.frames.map((f) => `${f.function}@${f.line}`), ['<module>@310', 'main@244', 'upload_checkpoints@17'])
  assert.equal(tb.traceback?.frames[2].code, 'manifest = json.loads(text)["files"]')
  assert.match(tb.action, /upload\.py:17 in upload_checkpoints/)

  const js = classifyLog('TypeError: Cannot read properties of undefined (reading \'dim\')\n    at buildModel (file:///w/dist/training/models/index.js:42:17)\n    at node:internal/process/task_queues:95:5\n')
  assert.equal(js.cause, 'traceback')
  assert.deepEqual(js.traceback?.frames.map((f) => f.file), ['/w/dist/training/models/index.js'])

  assert.equal(classifyLog(CLEAN_LOG).cause, 'none')
  assert.equal(classifyLog(CLEAN_LOG).title, 'No failure marker found')
  assert.equal(classifyLog('Training pipeline failed\n').cause, 'failure_marker')
})

function setup(t: import('node:test').TestContext, log: string): {fake: FakeVast; id: number; deps: IncidentDeps; copies: CopyRequest[]} {
  const fake = makeFakeVast()
  t.after(() => fake.cleanup())
  const id = fake.addInstance({ageSeconds: 7200})
  fake.writeLog(id, log)
  const copies: CopyRequest[] = []
  const provider = new VastProvider(new VastCli({bin: fake.bin, env: fake.env(), attempts: 1}))
  let clock = Date.parse('2025-03-01T12:00:00Z')
  return {
    fake,
    id,
    copies,
    deps: {
      provider,
      now: () => new Date((clock += 1000)),
      copyCheckpoints: async (req) => {
        copies.push(req)
        await mkdir(req.localDir, {recursive: true})
        await writeFile(join(req.localDir, 'operator.ckpt.json'), '{}')
        return {ok: true, files: 1}
      },
    },
  }
}

const stops = (fake: FakeVast) => (fake.read().calls ?? []).filter((c) => c.argv[0] === 'stop').length
const destroys = (fake: FakeVast) => (fake.read().calls ?? []).filter((c) => c.argv[0] === 'destroy').length

for (const [name, log, cause] of [['OOM', OOM_LOG, 'oom'], ['mismatch', MISMATCH_LOG, 'shape_mismatch'], ['NaN', NAN_LOG, 'nan'], ['traceback', TRACEBACK_LOG, 'traceback']] as const) {
  test(`incident on a ${name} failure: log saved, checkpoints copied, stopped once, classified`, async (t) => {
    const root = await tempDir(t, 'ups-incident-')
    const {fake, id, deps, copies} = setup(t, log)
    const options = {instanceId: id, incidentsRoot: join(root, 'incidents'), runsRoot: join(root, 'runs')}
    const r = await openIncident(options, deps)
    assert.equal(r.classification.cause, cause)
    assert.equal(r.reused, false)
    assert.equal(r.runId, 'run_20250301_100000_ab12')
    assert.equal(await readFile(r.files.log, 'utf8'), log)
    assert.equal(JSON.parse(await readFile(r.files.classification, 'utf8')).cause, cause)
    assert.equal(r.state.checkpoints.status, 'copied')
    assert.equal(copies[0].remotePath, '/workspace/ups/artifacts/runs/run_20250301_100000_ab12/checkpoints')
    assert.match(copies[0].sshUrl, /^ssh:\/\/root@/)
    assert.equal(r.state.stop.status, 'stopped')
    assert.equal(fake.read().instances[0].intended_status, 'stopped')
    const report = await readFile(r.files.report, 'utf8')
    assert.ok(report.includes(r.classification.title))
    assert.match(report, /## Evidence preserved[\s\S]*checkpoints\/ \(1 file/)

    // Idempotent: same folder, no second stop, checkpoints kept, nothing destroyed.
    const again = await openIncident(options, deps)
    assert.equal(again.folder, r.folder)
    assert.equal(again.reused, true)
    assert.equal(again.state.invocations, 2)
    assert.equal(again.state.stop.status, 'stopped')
    assert.equal(again.state.stop.at, r.state.stop.at)
    assert.equal(again.state.checkpoints.status, 'copied')
    assert.equal(again.classification.cause, cause)
    assert.equal(stops(fake), 1)
    assert.equal(destroys(fake), 0)
    assert.equal(copies.length, 1)
    assert.deepEqual(await readdir(options.incidentsRoot), [r.folder.split('/').at(-1)])
  })
}

test('incident on a stopped instance: checkpoints impossible, not stopped again; unknown instance is exit 2', async (t) => {
  const root = await tempDir(t, 'ups-incident-')
  const {fake, id, deps, copies} = setup(t, CLEAN_LOG)
  fake.update((s) => {
    s.instances[0].intended_status = 'stopped'
  })
  const r = await openIncident({instanceId: id, incidentsRoot: root, runsRoot: root}, deps)
  assert.equal(r.classification.cause, 'none')
  assert.equal(r.state.checkpoints.status, 'impossible')
  assert.match(r.state.checkpoints.reason!, /stopped and SSH needs it running/)
  assert.equal(r.state.stop.status, 'already-stopped')
  assert.equal(copies.length, 0)
  assert.equal(stops(fake), 0)
  await assert.rejects(openIncident({instanceId: 999, incidentsRoot: root, runsRoot: root}, deps), (e: Error & {code?: string; exitCode?: number}) => e.code === 'INCIDENT_NO_INSTANCE' && e.exitCode === 2)
})

test('incident: a failed copy is reported, the stop still happens, and the batch comes from the run config', async (t) => {
  const root = await tempDir(t, 'ups-incident-')
  const {fake, id, deps} = setup(t, OOM_LOG)
  await mkdir(join(root, 'runs', 'run_x'), {recursive: true})
  await writeFile(join(root, 'runs', 'run_x', 'config.resolved.yaml'), 'training:\n  batch_size: 24\n')
  deps.copyCheckpoints = async () => ({ok: false, reason: 'scp failed: ssh: connect to host ssh2.vast.ai port 20001: Connection refused'})
  const r = await openIncident({instanceId: id, runId: 'run_x', incidentsRoot: root, runsRoot: join(root, 'runs')}, deps)
  assert.equal(r.state.checkpoints.status, 'failed')
  assert.match(await readFile(r.files.report, 'utf8'), /copy failed: scp failed: .*Connection refused/)
  assert.equal(r.state.stop.status, 'stopped')
  assert.equal(stops(fake), 1)
  assert.match(r.classification.action, /batch_size 24 -> 12/)
})
