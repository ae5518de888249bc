import { InMemoryImageStore } from '../../../lib/images/image-store.ts';
import { describeImageStore } from './image-store-contract.ts';

describeImageStore('InMemoryImageStore', () => new InMemoryImageStore());
