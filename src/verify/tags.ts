// The tag lists of signature fields and key records, as verification reads them: the one
// parser in src/common/tag-list.ts, with "not a tag list" as null.
import { parseTagList, type TagList } from '../common/tag-list.ts';

export type Tags = TagList;

export function parseTags(text: string): Tags | null {
  const tags = parseTagList(text);
  return typeof tags === 'string' ? null : tags;
}
