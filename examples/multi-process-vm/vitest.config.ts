import { hmmkitProject } from '../../vitest.shared.ts';

export default hmmkitProject('@hmmkit/example-multi-process-vm');
