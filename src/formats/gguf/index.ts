/** GGUF files: writer, reader, tensor encodings. */
export { GgufWriter, type GgufValue, type GgufValueType, type TensorData } from './writer.js';
export { GgufFile, type GgufTensorInfo, type GgufEntry } from './reader.js';
export { encodeTensor, decodeTensor, type TensorType } from './encode.js';
