// Command codesize reports the largest functions and the types with most
// methods in the product code (everything but _test.go files, hack/ and
// integration/), so the design's limits (functions under 80 lines, types
// with at most 20 methods) can be checked: go run ./hack/codesize [-top N].
package main

import (
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

type count struct {
	name string
	n    int
}

func main() {
	top := flag.Int("top", 5, "how many of each to print")
	root := flag.String("root", ".", "repository root")
	flag.Parse()
	funcs, methods, err := measure(*root)
	if err != nil {
		fmt.Fprintln(os.Stderr, "codesize:", err)
		os.Exit(2)
	}
	print("largest functions (lines)", funcs, *top)
	print("types with most methods", methods, *top)
}

func print(title string, cs []count, top int) {
	fmt.Println(title + ":")
	for i := 0; i < top && i < len(cs); i++ {
		fmt.Printf("  %4d  %s\n", cs[i].n, cs[i].name)
	}
}

// skip tells the directories and files that are not product code.
func skip(rel string, d fs.DirEntry) bool {
	if d.IsDir() {
		top := strings.Split(rel, string(filepath.Separator))[0]
		return top == "hack" || top == "integration" || strings.HasPrefix(d.Name(), ".") && rel != "."
	}
	return !strings.HasSuffix(rel, ".go") || strings.HasSuffix(rel, "_test.go")
}

// measure returns every function by line count and every type (package
// and name) by method count, largest first.
func measure(root string) (funcs, methods []count, err error) {
	fset := token.NewFileSet()
	byType := map[string]int{}
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if skip(rel, d) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return fmt.Errorf("parse %s: %w", rel, err)
		}
		for _, decl := range f.Decls {
			fd, ok := decl.(*ast.FuncDecl)
			if !ok || fd.Body == nil {
				continue
			}
			lines := fset.Position(fd.End()).Line - fset.Position(fd.Pos()).Line + 1
			name := fd.Name.Name
			if fd.Recv != nil && len(fd.Recv.List) == 1 {
				t := filepath.Dir(rel) + "." + recvType(fd.Recv.List[0].Type)
				byType[t]++
				name = recvType(fd.Recv.List[0].Type) + "." + name
			}
			funcs = append(funcs, count{fmt.Sprintf("%s (%s:%d)", name, rel, fset.Position(fd.Pos()).Line), lines})
		}
		return nil
	})
	for t, n := range byType {
		methods = append(methods, count{t, n})
	}
	for _, cs := range [][]count{funcs, methods} {
		sort.Slice(cs, func(i, j int) bool {
			if cs[i].n != cs[j].n {
				return cs[i].n > cs[j].n
			}
			return cs[i].name < cs[j].name
		})
	}
	return funcs, methods, err
}

// recvType names a receiver's type without pointer or type parameters.
func recvType(e ast.Expr) string {
	switch t := e.(type) {
	case *ast.StarExpr:
		return recvType(t.X)
	case *ast.IndexExpr:
		return recvType(t.X)
	case *ast.IndexListExpr:
		return recvType(t.X)
	case *ast.Ident:
		return t.Name
	}
	return "?"
}
