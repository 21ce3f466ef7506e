import assert from 'node:assert/strict'
import {mkdirSync, readFileSync, statSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {gunzipSync} from 'node:zlib'
import {afterEach, beforeEach, describe, test} from 'node:test'

import {recoverInstance} from '../../../src/ops/index.js'
import {launch, readLaunchRecords} from '../../../src/vast/index.js'
import {CONFIG, type Harness, harness} from './helpers.js'

/** The script an instance runs: unpacks the gzip+base64 form. */
function plainOnstart(script: string): string {
  const m = /echo '([A-Za-z0-9+/=]+)' \| base64 -d/.exec(script)
  return m ? gunzipSync(Buffer.from(m[1], 'base64')).toString('utf8') : script
}

describe('ups recover puts the saved checkpoints back on the replacement', () => {
  let h: Harness
  let oldId: number
  let runId: string
  const never = async () => assert.fail('must not ask')
  const disk = (id: number, ...p: string[]) => join(h.fake.dir, 'disks', String(id), ...p)
  const files = {'operator.json': '{"epoch": 7}', 'operator/weights.bin': 'x'.repeat(1000)}
  const bytes = Object.values(files).reduce((n, v) => n + v.length, 0)

  beforeEach(async () => {
    h = harness()
    const r = await launch({configPath: CONFIG, gpu: 'RTX_4090', autoShutdown: true}, h.deps)
    oldId = r.instanceId!
    runId = r.runId
    h.fake.writeLog(oldId, 'Training started\n[operator] epoch 7/25 loss=0.02\n')
    h.fake.advance(600)
  })
  afterEach(() => h.cleanup())

  function putCheckpoints(): void {
    for (const [name, text] of Object.entries(files)) {
      const p = disk(oldId, 'workspace/ups/artifacts/runs', runId, 'checkpoints', name)
      mkdirSync(join(p, '..'), {recursive: true})
      writeFileSync(p, text)
    }
    // The run's metadata: `ups resume RUN` opens the run through it.
    writeFileSync(disk(oldId, 'workspace/ups/artifacts/runs', runId, 'metadata.json'), JSON.stringify({run_id: runId, status: 'running'}))
  }
  /** The new instance's image has /workspace (Vast's images do); rsync creates what is below it. */
  const prepareNewDisk = () => mkdirSync(disk(h.fake.read().nextInstanceId!, 'workspace'), {recursive: true})
  const copies = () => (h.fake.read().calls ?? []).filter((c) => c.argv[0] === 'copy')
  /** The copies onto an instance (local -> ID:path). */
  const uploads = () => copies().filter((c) => /^\d+:/.test(c.argv[2] ?? ''))

  test('copies them off the old instance, onto the new one under the run directory, marker last, before the resume', async () => {
    putCheckpoints()
    prepareNewDisk()
    const r = await recoverInstance({instanceId: oldId, yes: true, dryRun: false, isTTY: false, ask: never}, h.deps)
    const newId = r.launch.instanceId!
    const runDir = disk(newId, 'workspace/ups/artifacts/runs', runId)
    for (const [name, text] of Object.entries(files)) assert.equal(readFileSync(join(runDir, 'checkpoints', name), 'utf8'), text)
    assert.deepEqual(JSON.parse(readFileSync(join(runDir, 'metadata.json'), 'utf8')), {run_id: runId, status: 'running'}, 'the run metadata travels with the checkpoints')
    assert.deepEqual(r.saved!.checkpoints.runFiles, ['metadata.json'], 'files the old run never wrote are skipped')
    assert.deepEqual(JSON.parse(readFileSync(join(runDir, '.restore-complete'), 'utf8')), {run_id: runId, files: 2, bytes})
    assert.deepEqual({...r.restored, error: r.restored!.error ?? null}, {
      remotePath: `/workspace/ups/artifacts/runs/${runId}/checkpoints`, markerPath: `/workspace/ups/artifacts/runs/${runId}/.restore-complete`,
      restored: true, files: 2, bytes, error: null,
    })
    // Off the old instance (checkpoints, then each run file), the checkpoints onto the new one, then the marker.
    const all = copies()
    assert.equal(all[0].argv[1], `${oldId}:/workspace/ups/artifacts/runs/${runId}/checkpoints/`)
    assert.deepEqual(all.slice(1, 5).map((x) => x.argv[1].split('/').pop()), ['metadata.json', 'config.resolved.yaml', 'summary.json', 'history.jsonl'])
    const c = [all[0], ...all.slice(5)]
    assert.equal(c.length, 3)
    assert.match(c[1].argv[1], /checkpoints\/$/)
    assert.equal(c[1].argv[2], `${newId}:/workspace/`)
    assert.match(c[2].argv[1], /marker\/$/)
    assert.equal(c[2].argv[2], `${newId}:/workspace/`)
    // Only once the new instance ran (created 10 s + loading 30 s in this fake).
    const created = h.fake.read().instances.find((i) => i.id === newId)!.created_at as number
    assert.ok(c[1].at >= created + 40, `${c[1].at} vs ${created}`)
    // The new instance's onstart waits for that marker before `ups resume`.
    const onstart = plainOnstart(h.fake.read().instances.find((i) => i.id === newId)!.onstart as string)
    const wait = onstart.indexOf(`/artifacts/runs/${runId}/.restore-complete`)
    assert.ok(wait > 0 && wait < onstart.lastIndexOf(`ups resume ${runId}`), onstart)
    // Recorded: the old launch's update, the new launch, and the incident note.
    const {launches} = await readLaunchRecords(h.deps.launchesFile)
    const restore = {restored: true, files: 2, bytes, remote_path: `/workspace/ups/artifacts/runs/${runId}/checkpoints`}
    assert.deepEqual(launches[0].restore, restore)
    assert.equal(launches[0].replaced_by, newId)
    assert.deepEqual(launches[1].restore, restore)
    assert.deepEqual(JSON.parse(readFileSync(join(r.saved!.incidentDir, 'incident.json'), 'utf8')).restore, restore)
    // Staged as hard links: no second copy of the checkpoint bytes.
    assert.equal(statSync(join(r.saved!.checkpoints.localPath!, 'operator/weights.bin')).nlink, 2)
  })

  test('a failed restore is reported with the reason and does not abort the recovery', async () => {
    putCheckpoints() // no /workspace on the new instance: rsync cannot create the destination
    const r = await recoverInstance({instanceId: oldId, yes: true, dryRun: false, isTTY: false, ask: never}, h.deps)
    const newId = r.launch.instanceId!
    assert.ok(newId)
    assert.equal(r.restored!.restored, false)
    assert.equal(r.restored!.files, 2)
    assert.equal(r.restored!.bytes, bytes)
    assert.match(r.restored!.error!, /^copy failed: vastai copy .* did not copy: rsync: \[Receiver\] mkdir "\/workspace\/" .*No such file or directory/)
    assert.equal(uploads().length, 1, 'no marker after a failed checkpoint copy')
    const insts = h.fake.read().instances
    assert.equal(insts.find((i) => i.id === oldId)!.destroyed, true)
    const {launches} = await readLaunchRecords(h.deps.launchesFile)
    assert.equal(launches[0].status, 'recovered')
    assert.equal(launches[0].restore!.restored, false)
    assert.match(launches[0].restore!.error!, /mkdir/)
  })

  test('a replacement that never runs: the restore says why; the recovery still completes', async () => {
    putCheckpoints()
    prepareNewDisk()
    h.fake.update((s) => void (s.createDefaults = {stuck: 'loading'}))
    const r = await recoverInstance({instanceId: oldId, yes: true, dryRun: false, isTTY: false, ask: never, waitTimeoutMs: 120_000}, h.deps)
    assert.ok(r.launch.instanceId)
    assert.equal(r.restored!.restored, false)
    assert.match(r.restored!.error!, /^copy failed: Instance \d+ did not reach running within 120 s \(last status: loading/)
    assert.equal(uploads().length, 0, 'only the copies off the old instance')
  })

  test('nothing saved: no restore step, and the replacement does not wait for one', async () => {
    const r = await recoverInstance({instanceId: oldId, yes: true, dryRun: false, isTTY: false, ask: never}, h.deps)
    assert.equal(r.restored, null)
    const onstart = plainOnstart(h.fake.read().instances.find((i) => i.id === r.launch.instanceId)!.onstart as string)
    assert.doesNotMatch(onstart, /restore-complete/)
    assert.match(onstart, new RegExp(`ups resume ${runId}`))
    const {launches} = await readLaunchRecords(h.deps.launchesFile)
    assert.equal(launches[0].restore, undefined)
  })
})
