/** Shared setup of the svm benchmarks (not a bench itself). */
import { createGpuDevice, type GpuDevice } from '@hmmkit/gpu';
import { createMachine, MAP_ANONYMOUS, MAP_PRIVATE, Mm, PROT_READ, PROT_WRITE } from '@hmmkit/mm';
import { createSim, type Sim } from '@hmmkit/sim';
import { GpuSvm, type GpuSvmOptions } from '../src/index.ts';

export interface BenchWorld {
  sim: Sim;
  mm: Mm;
  dev: GpuDevice;
  svm: GpuSvm;
  a: number;
}

/** A sim, an mm with `pages` of anonymous memory (2 MiB aligned), one device and a GpuSvm. */
export async function world(pages: number, opts: GpuSvmOptions = {}): Promise<BenchWorld> {
  const sim = createSim({ seed: 1 });
  const mm = new Mm(createMachine(sim, { thp: 'never' }));
  const dev = createGpuDevice(sim, { vramBytes: 64 << 20 });
  const svm = new GpuSvm(mm, [dev], opts);
  svm.attachSystemMemory();
  const raw = await mm.mmap(0, pages * 4096 + 0x200000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  const a = raw % 0x200000 === 0 ? raw : raw - (raw % 0x200000) + 0x200000;
  return { sim, mm, dev, svm, a };
}
