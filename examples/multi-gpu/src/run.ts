/**
 * Two GPUs on one address space (`new GpuSvm(mm, [gpu0, gpu1], ...)`): gpu1 initialises a buffer
 * (first touch), gpu0 runs three compute kernels over it, gpu1 reads the result. Buffer X carries
 * a preferred-location hint (gpu0, as `cudaMemAdviseSetPreferredLocation` / KFD PREFERRED_LOC);
 * buffer Y has none, so a fault migrates it to the faulting GPU when it is in system memory.
 * Without peer access a GPU cannot map the other's VRAM and the data goes through system memory;
 * with `peer: true` (an XGMI hive / NVLink) a GPU maps the other's VRAM through the PEER aperture.
 */
import { ACCESS, APERTURE_NAMES, WALK } from '@hmmkit/gpu';
import { createSim, formatNs } from '@hmmkit/sim';
import {
  type Access,
  createSvmWorld,
  deviceLoc,
  drmGpusvmPolicy,
  mmapAnonymous,
  runKernel,
  type SvmWorld,
  worldVerdict,
} from '@hmmkit/svm';

const P = 4096;
const M2 = 0x200000;
const BASE = 0x1_0000_0000;
const ROUNDS = 3;

/** What one buffer cost over the rounds. */
export interface BufferMetrics {
  readonly toVramPages: number;
  readonly toRamPages: number;
  readonly simNs: number;
  /** gpu0's compute kernels after the first round (no faults left): where placement shows as time. */
  readonly gpu0SteadyNs: number;
  /** gpu0's compute accesses by the aperture they went through (vid = its own VRAM). */
  readonly gpu0Accesses: Record<string, number>;
  /** How each GPU maps the buffer at the end (aperture name or 'unmapped'). */
  readonly gpu0: string;
  readonly gpu1: string;
  readonly readMismatches: number;
}

/** The handoff: gpu0's results prefetched to gpu1 (drm_pagemap / KFD prefetch to another GPU). */
export interface HandoffMetrics {
  /** Pages that went VRAM to VRAM over the peer link. */
  readonly d2dPages: number;
  /** Bytes that crossed to system memory and back (the bounce without a peer link). */
  readonly d2hBytes: number;
  readonly h2dBytes: number;
  /** Simulated time of the prefetch. */
  readonly simNs: number;
  readonly readMismatches: number;
}

/** Numbers of one run. */
export interface MultiGpuMetrics {
  readonly hinted: BufferMetrics;
  readonly unhinted: BufferMetrics;
  readonly handoff: HandoffMetrics;
  readonly violations: number;
}

/** gpu0 writes a 2 MiB buffer in its VRAM, then a prefetch hands it to gpu1, which reads it. */
async function handoff(w: SvmWorld, buf: number): Promise<HandoffMetrics> {
  const k = (n: string) => w.sim.counters.get(n);
  const ce = (dir: 'bytesD2h' | 'bytesH2d') => w.devs.reduce((s, d) => s + d.copyEngine[dir].value, 0);
  const pages = Array.from({ length: M2 / P }, (_, i) => i);
  await w.svm.prefetch(buf, buf + M2, deviceLoc(0));
  await runKernel(w, 0, [pages.map((i): Access => [buf + i * P, ACCESS.WRITE, i])]);
  const [dd0, d2h0, h2d0, t0] = [k('svm.migrate.d2d.pages'), ce('bytesD2h'), ce('bytesH2d'), w.sim.now];
  await w.svm.prefetch(buf, buf + M2, deviceLoc(1));
  const simNs = w.sim.now - t0;
  const r = await runKernel(w, 1, [pages.map((i): Access => [buf + i * P, ACCESS.READ, 0])]);
  let readMismatches = 0;
  for (const i of pages) if (r.data[i] !== i) readMismatches++;
  return {
    d2dPages: k('svm.migrate.d2d.pages') - dd0,
    d2hBytes: ce('bytesD2h') - d2h0,
    h2dBytes: ce('bytesH2d') - h2d0,
    simNs,
    readMismatches,
  };
}

/** Printed lines and metrics. */
export interface MultiGpuResult {
  readonly lines: string[];
  readonly metrics: MultiGpuMetrics;
}

function aperture(w: SvmWorld, d: number, va: number): string {
  const t = w.devs[d]!.pageTable.translate(va);
  return t.status === WALK.MAPPED ? (APERTURE_NAMES[t.aperture] ?? '?') : 'unmapped';
}

/** gpu1 initialises `buf` (one word per 8 pages), gpu0 updates it `ROUNDS` times, gpu1 reads it. */
async function pipeline(w: SvmWorld, buf: number): Promise<BufferMetrics> {
  const k = (n: string) => w.sim.counters.get(n);
  const v0 = k('svm.migrate.toVram.pages');
  const r0 = k('svm.migrate.toRam.pages');
  const t0 = w.sim.now;
  const idx = Array.from({ length: 64 }, (_, i) => i);
  const va = (i: number) => buf + i * 8 * P;
  await runKernel(w, 1, [idx.map((i): Access => [va(i), ACCESS.WRITE, i])]);
  const where: Record<string, number> = {};
  let gpu0SteadyNs = 0;
  for (let round = 0; round < ROUNDS; round++) {
    // atomicAdd(1) on every word: a read-modify-write by gpu0
    const kr = await runKernel(w, 0, [idx.map((i): Access => [va(i), ACCESS.ATOMIC, 1])]);
    if (round > 0) gpu0SteadyNs += kr.elapsedNs;
    for (const i of idx) {
      const ap = aperture(w, 0, va(i));
      where[ap] = (where[ap] ?? 0) + 1;
    }
  }
  const r = await runKernel(w, 1, [idx.map((i): Access => [va(i), ACCESS.READ, 0])]);
  let readMismatches = 0;
  for (const i of idx) if (r.data[i] !== i + ROUNDS) readMismatches++;
  return {
    toVramPages: k('svm.migrate.toVram.pages') - v0,
    toRamPages: k('svm.migrate.toRam.pages') - r0,
    simNs: w.sim.now - t0,
    gpu0SteadyNs,
    gpu0Accesses: where,
    gpu0: aperture(w, 0, buf),
    gpu1: aperture(w, 1, buf),
    readMismatches,
  };
}

const show = (name: string, m: BufferMetrics): string[] => [
  `${name}: gpu0's ${ROUNDS} compute kernels went to ` +
    Object.entries(m.gpu0Accesses)
      .map(([ap, n]) => `${ap} ×${n}`)
      .join(', ') +
    ` (vid = local VRAM); ${m.toVramPages} pages migrated to VRAM, ${m.toRamPages} back to system memory, ${formatNs(m.simNs)}`,
  `    mappings at the end: gpu0 → ${m.gpu0}, gpu1 → ${m.gpu1}; gpu1 read gpu0's results: ` +
    `${m.readMismatches === 0 ? 'yes' : `NO (${m.readMismatches} wrong)`}`,
];

/** Runs the scenario with or without peer access between the GPUs. */
export async function run(opts: { peer?: boolean; seed?: number } = {}): Promise<MultiGpuResult> {
  const sim = createSim({ seed: opts.seed ?? 1 });
  const peer = opts.peer ?? false;
  const w = await createSvmWorld(sim, {
    devices: 2,
    granule: drmGpusvmPolicy(),
    devmem: { migrate: 'fault', peer },
  });
  return sim.sched.runMain(async () => {
    const lines: string[] = [];
    const say = (s: string) => lines.push(s);
    const x = await mmapAnonymous(w.mm, M2, BASE);
    const y = await mmapAnonymous(w.mm, M2, BASE + 2 * M2);
    w.svm.attrs.advise(x, x + M2, { preferredLoc: deviceLoc(0) });
    say(
      `${peer ? 'peer access (one pgmap owner: XGMI/NVLink)' : 'no peer access (one pgmap owner per GPU)'}; ` +
        `gpu1 initialises a 2 MiB buffer, gpu0 updates it ${ROUNDS} times, gpu1 reads the result`,
    );
    const hinted = await pipeline(w, x);
    for (const l of show('X, preferred location gpu0', hinted)) say(l);
    const unhinted = await pipeline(w, y);
    for (const l of show('Y, no hint', unhinted)) say(l);
    say(
      `    gpu0's compute kernels once every page is mapped (rounds 2–${ROUNDS}): X ${formatNs(hinted.gpu0SteadyNs)}, ` +
        `Y ${formatNs(unhinted.gpu0SteadyNs)} (an access through SYS costs gpuSysAccessNs, PEER gpuPeerAccessNs, more than VRAM)`,
    );
    const z = await mmapAnonymous(w.mm, M2, BASE + 4 * M2);
    const h = await handoff(w, z);
    say(
      `Z, handoff: gpu0 writes 2 MiB in its VRAM, a prefetch moves it to gpu1 in ${formatNs(h.simNs)}: ` +
        (h.d2dPages > 0
          ? `${h.d2dPages} pages VRAM to VRAM over the link, ${h.d2hBytes + h.h2dBytes} bytes through system memory`
          : `through system memory (${h.d2hBytes} bytes down, ${h.h2dBytes} up)`) +
        `; gpu1 read them: ${h.readMismatches === 0 ? 'yes' : `NO (${h.readMismatches} wrong)`}`,
    );
    const verdict = worldVerdict(w);
    say(verdict.line);
    const { violations } = verdict;
    return { lines, metrics: { hinted, unhinted, handoff: h, violations } };
  });
}
