// ES module entry: the same module as `require('tierfs')`.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const tierfs = require('./index.js');

export const { open, Store, registerBackend, backendTypes } = tierfs;
export default tierfs;
