package pgproxy

/*
#include <stdlib.h>
#include <stddef.h>

typedef struct {
	char* message;
	char* funcname;
	char* filename;
	int lineno;
	int cursorpos;
	char* context;
} alPgQueryError;

typedef struct {
	size_t len;
	char* data;
} alPgQueryProtobuf;

typedef struct {
	alPgQueryProtobuf parse_tree;
	char* stderr_buffer;
	alPgQueryError* error;
} alPgQueryProtobufParseResult;

extern alPgQueryProtobufParseResult pg_query_parse_protobuf_opts(const char* input, int parser_options);
extern void pg_query_free_protobuf_parse_result(alPgQueryProtobufParseResult result);
*/
import "C"

import (
	"errors"
	"unsafe"

	pg "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"
)

// parseNonStandard parses sql as the server does with
// standard_conforming_strings off.
func parseNonStandard(sql string) (*pg.ParseResult, error) {
	in := C.CString(sql)
	defer C.free(unsafe.Pointer(in))
	res := C.pg_query_parse_protobuf_opts(in, 32)
	defer C.pg_query_free_protobuf_parse_result(res)
	if res.error != nil {
		return nil, errors.New(C.GoString(res.error.message))
	}
	b := C.GoBytes(unsafe.Pointer(res.parse_tree.data), C.int(res.parse_tree.len))
	tree := &pg.ParseResult{}
	if err := proto.Unmarshal(b, tree); err != nil {
		return nil, err
	}
	return tree, nil
}
