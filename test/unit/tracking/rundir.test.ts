import assert from 'node:assert/strict'
import {appendFile, mkdtemp, readdir, readFile, rm, stat, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'
import {parse} from 'yaml'

import {
  createRunDir,
  findRuns,
  historyWriter,
  JsonlAppender,
  listRuns,
  newRunId,
  openRunDir,
  readHistory,
  readMetadata,
  readSummary,
  updateMetadata,
  updateSummary,
} from '../../../src/tracking/rundir.js'
import {UserError} from '../../../src/util/errors.js'

let tmp: string
before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'ups-rundir-'))
})
after(async () => {
  await rm(tmp, {recursive: true, force: true})
})

describe('newRunId', () => {
  it('formats the injected clock in UTC with 4 hex digits', () => {
    const id = newRunId(new Date(Date.UTC(2025, 0, 2, 3, 4, 5)), () => 'a1F9')
    assert.equal(id, 'run_20250102_030405_a1f9')
    assert.match(newRunId(new Date(Date.UTC(2025, 11, 31, 23, 59, 59)), () => 'ffff00'), /^run_20251231_235959_ffff$/)
  })
})

describe('createRunDir / openRunDir', () => {
  it('lays out the run directory with config, metadata, history, summary and subfolders', async () => {
    const root = join(tmp, 'layout')
    const dir = await createRunDir(root, 'run_20250102_030405_abcd', {config: {latent: {dim: 32}, logging: {wandb: {enabled: false}}}})
    const names = (await readdir(dir.path)).sort()
    assert.deepEqual(names, ['checkpoints', 'config.resolved.yaml', 'eval', 'history.jsonl', 'logs', 'metadata.json', 'reports', 'summary.json'])
    for (const sub of ['checkpoints', 'eval', 'logs', 'reports']) assert.ok((await stat(join(dir.path, sub))).isDirectory())
    assert.deepEqual(parse(await readFile(dir.paths.config, 'utf8')), {latent: {dim: 32}, logging: {wandb: {enabled: false}}})
    const meta = await readMetadata(dir)
    assert.equal(meta.run_id, 'run_20250102_030405_abcd')
    assert.equal(meta.created_at, '2025-01-02T03:04:05.000Z')
    assert.equal(meta.status, 'created')
    assert.deepEqual(await readSummary(dir), {})
    // No temp files left behind by the atomic writes.
    assert.ok(!names.some((n) => n.endsWith('.tmp')))
  })

  it('refuses an existing run and a malformed id', async () => {
    const root = join(tmp, 'dup')
    await createRunDir(root, 'run_20250102_030405_0000')
    await assert.rejects(createRunDir(root, 'run_20250102_030405_0000'), (e: UserError) => e.code === 'RUNDIR_EXISTS' && e.exitCode === 2)
    await assert.rejects(createRunDir(root, 'my-run'), (e: UserError) => e.code === 'RUNDIR_BAD_ID')
  })

  it('opens by path, id and unique prefix; lists and reports ambiguity', async () => {
    const root = join(tmp, 'find')
    await createRunDir(root, 'run_20250101_000000_aaaa')
    await createRunDir(root, 'run_20250101_000000_aabb')
    await createRunDir(root, 'run_20250202_000000_cccc')
    await writeFile(join(root, 'not-a-run.txt'), 'x')
    assert.deepEqual((await listRuns(root)).map((r) => r.id), ['run_20250101_000000_aaaa', 'run_20250101_000000_aabb', 'run_20250202_000000_cccc'])
    assert.equal((await openRunDir('run_20250202', root)).id, 'run_20250202_000000_cccc')
    assert.equal((await openRunDir(join(root, 'run_20250101_000000_aabb'), join(tmp, 'elsewhere'))).id, 'run_20250101_000000_aabb')
    assert.equal((await findRuns(root, 'run_20250101_000000_aa')).length, 2)
    await assert.rejects(openRunDir('run_20250101', root), (e: UserError) => e.code === 'RUNDIR_AMBIGUOUS' && /aaaa.*aabb/.test(e.message))
    await assert.rejects(openRunDir('run_2030', root), (e: UserError) => e.code === 'RUNDIR_NOT_FOUND' && e.exitCode === 2)
    assert.deepEqual(await listRuns(join(tmp, 'missing-root')), [])
  })
})

describe('metadata and summary', () => {
  it('merges updates and writes them atomically', async () => {
    const dir = await createRunDir(join(tmp, 'meta'), 'run_20250102_030405_1234', {metadata: {config_name: 'burgers'}})
    await updateMetadata(dir, {status: 'running', instance: {id: 7}})
    const meta = await updateMetadata(dir, {status: 'finished'})
    assert.deepEqual(meta, {run_id: dir.id, created_at: '2025-01-02T03:04:05.000Z', status: 'finished', config_name: 'burgers', instance: {id: 7}})
    assert.deepEqual(JSON.parse(await readFile(dir.paths.metadata, 'utf8')), meta)
    await updateSummary(dir, {loss: 1, acc: 0.5})
    assert.deepEqual(await updateSummary(dir, {loss: 0.25}), {loss: 0.25, acc: 0.5})
    assert.deepEqual((await readdir(dir.path)).filter((n) => n.endsWith('.tmp')), [])
  })

  it('names the file when metadata.json is damaged', async () => {
    const dir = await createRunDir(join(tmp, 'bad'), 'run_20250102_030405_dead')
    await writeFile(dir.paths.metadata, '{"run_id": ')
    await assert.rejects(readMetadata(dir), (e: UserError) => e.code === 'RUNDIR_BAD_JSON' && e.message.includes('metadata.json'))
  })
})

describe('history.jsonl', () => {
  it('appends one line per record and reads them back in order', async () => {
    const dir = await createRunDir(join(tmp, 'hist'), 'run_20250102_030405_0001')
    const w = historyWriter(dir, 2)
    // Concurrent logs must not interleave partial lines.
    await Promise.all([0, 1, 2, 3, 4].map((step) => w.log(step, {loss: 1 / (step + 1)}, new Date(Date.UTC(2025, 0, 1, 0, 0, step)))))
    await w.close()
    const text = await readFile(dir.paths.history, 'utf8')
    assert.equal(text.split('\n').length, 6)
    const {records, tornLines} = await readHistory(dir)
    assert.deepEqual(records.map((r) => r.step), [0, 1, 2, 3, 4])
    assert.equal(records[4].time, '2025-01-01T00:00:04.000Z')
    assert.equal(records[1].metrics.loss, 0.5)
    assert.deepEqual(tornLines, [])
  })

  it('ignores and reports a torn last line, and a later writer cuts it off before appending', async () => {
    const dir = await createRunDir(join(tmp, 'torn'), 'run_20250102_030405_0002')
    const w = historyWriter(dir)
    await w.log(0, {loss: 1}, new Date(0))
    await w.log(1, {loss: 0.5}, new Date(0))
    await w.close()
    // A crash mid-write: half a JSON line, no newline.
    await appendFile(dir.paths.history, '{"step":2,"time":"1970-01-01T00:00:00.000Z","metr')
    const torn = await readHistory(dir)
    assert.deepEqual(torn.records.map((r) => r.step), [0, 1])
    assert.equal(torn.tornLines.length, 1)
    assert.equal(torn.tornLines[0].line, 3)
    assert.match(torn.tornLines[0].reason, /unterminated/)

    const resumed = historyWriter(dir)
    await resumed.log(2, {loss: 0.25}, new Date(0))
    await resumed.close()
    const again = await readHistory(dir)
    assert.deepEqual(again.records.map((r) => r.step), [0, 1, 2])
    assert.deepEqual(again.tornLines, [])
  })

  it('an appender recreates a logs/ folder removed from an existing run directory', async () => {
    const dir = await createRunDir(join(tmp, 'nologs'), 'run_20250102_030405_0003')
    await rm(dir.paths.logs, {recursive: true, force: true})
    const log = new JsonlAppender(join(dir.paths.logs, 'training.jsonl'), 1)
    await log.append({epoch: 1})
    await log.close()
    assert.equal(await readFile(join(dir.paths.logs, 'training.jsonl'), 'utf8'), '{"epoch":1}\n')
  })

  it('skips and reports a corrupt middle line without failing', async () => {
    const dir = await createRunDir(join(tmp, 'mid'), 'run_20250102_030405_0003')
    await writeFile(dir.paths.history, '{"step":0,"time":"t","metrics":{"a":1}}\nGARBAGE\n{"step":"x","metrics":{}}\n{"step":3,"time":"t","metrics":{"a":2}}\n')
    const {records, tornLines} = await readHistory(dir)
    assert.deepEqual(records.map((r) => r.step), [0, 3])
    assert.deepEqual(tornLines.map((t) => [t.line, t.reason]), [[2, 'not valid JSON'], [3, 'not a valid record']])
  })
})
