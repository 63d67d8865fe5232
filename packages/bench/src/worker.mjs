// Worker-thread entry for running the TypeScript sources on Node 20: loader hooks registered
// with --import do not reach worker threads (nodejs/node#47747), so register tsx here, then load
// the .ts worker. Built code (node --conditions=dist) uses dist/worker.js instead.
import { register } from 'tsx/esm/api';

register();
const mod = await import('./worker.ts');
export default mod.default;
