/* tokenizer.h — a Hugging Face `tokenizer.json` of DeepSeek-V3's kind:
 * byte-level BPE with merges, added tokens matched in the raw text first,
 * a pre-tokenizer that is a Sequence of `Split` regexes (PCRE2, Unicode
 * properties) ending in `ByteLevel` without its own regex, no normalizer.
 * Any other configuration is refused at load with an error naming the
 * field, rather than tokenized differently from the reference.
 *
 * Encoding is exact with respect to `tokenizers`' Tokenizer.encode (no
 * BOS added: DeepSeek's post-processor adds none; the chat template does);
 * decoding writes the exact bytes back, special tokens included. */
#ifndef DSCC_RT_TOKENIZER_H
#define DSCC_RT_TOKENIZER_H

#include "support/support.h"

typedef struct RtTokenizer RtTokenizer;

/* Loads DIR/tokenizer.json and, when present, DIR/tokenizer_config.json
 * (bos_token, eos_token, chat_template). NULL after reporting. */
RtTokenizer *rt_tok_load(DiagEngine *d, const char *dir);
void rt_tok_free(RtTokenizer *t);

/* Token ids of `len` bytes of UTF-8 text, in a malloc'd array (*ids, *n;
 * free it). Invalid UTF-8 is an error naming the byte offset. */
bool rt_tok_encode(const RtTokenizer *t, DiagEngine *d, const char *text, size_t len, int32_t **ids, size_t *n);

/* Appends the exact text of `ids` to `out`; an id the tokenizer does not
 * have is an error naming it and its position. */
bool rt_tok_decode(const RtTokenizer *t, DiagEngine *d, const int32_t *ids, size_t n, StrBuf *out);

/* The bytes of one token (NULL for an unknown id); *len gets their count. */
const char *rt_tok_piece(const RtTokenizer *t, int32_t id, size_t *len);

int32_t rt_tok_max_id(const RtTokenizer *t);     /* largest id, vocabulary or added */
int32_t rt_tok_bos(const RtTokenizer *t);        /* -1 when the config names none */
int32_t rt_tok_eos(const RtTokenizer *t);        /* -1 when the config names none */
const char *rt_tok_bos_text(const RtTokenizer *t); /* "" when none */
const char *rt_tok_eos_text(const RtTokenizer *t);
const char *rt_tok_chat_template(const RtTokenizer *t); /* NULL when none */

#endif
