package rest

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/iambilly/billy/fhir"
	"github.com/iambilly/billy/fhir/jsontree"
	"github.com/iambilly/billy/fhir/resource"
	"github.com/iambilly/billy/fhir/store"
	"github.com/iambilly/billy/internal/blob"
)

// Binary content never sits in the resource row: it is streamed into the encrypted blob store, and
// the stored Binary is its JSON without data plus a link (store.Blob) from the version to the blob.
//
//   - POST/PUT Binary with a non-FHIR Content-Type (audio/wav...) streams the body (up to
//     MaxBinaryBytes, never held in memory) and the Binary gets that contentType, and
//     securityContext from the X-Security-Context header.
//   - A FHIR JSON Binary with base64 data (bounded by MaxBodyBytes) is decoded into the blob store.
//   - A Media whose content carries inline data has it moved into a new Binary in the same
//     transaction; the Media's content.url then points at it.
//   - Reading a Binary returns the raw bytes with its contentType (Range requests honoured) unless
//     the client asks for FHIR JSON, which gets the resource with data encoded on the fly.

// isFHIRType reports whether a media type is a FHIR (JSON) format.
func isFHIRType(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	switch mt {
	case "application/fhir+json", "application/json", "application/json+fhir":
		return true
	}
	return false
}

// readRawBinary streams a raw Binary upload into the blob store and returns the Binary resource
// that will describe it.
func (s *Server) readRawBinary(r *http.Request, req *request) error {
	if s.cfg.Blobs == nil {
		return fhir.Errorf(fhir.ErrNotImplemented, "not-supported", "this server has no blob store for Binary content")
	}
	ct := req.contentType
	if _, _, err := mime.ParseMediaType(ct); err != nil {
		return fhir.Errorf(fhir.ErrUnsupportedMedia, "not-supported", "Content-Type %q cannot be parsed", ct)
	}
	limit := s.cfg.MaxBinaryBytes
	body := http.MaxBytesReader(nil, r.Body, limit)
	ref, err := s.putBlob(r.Context(), body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return fhir.Errorf(fhir.ErrTooLarge, "too-costly", "the Binary is larger than the limit of %d bytes", limit)
		}
		return err
	}
	tree := jsontree.NewObject()
	tree.Set("resourceType", jsontree.NewString("Binary"))
	if req.rt.id != "" {
		tree.Set("id", jsontree.NewString(req.rt.id))
	}
	tree.Set("contentType", jsontree.NewString(ct))
	if sc := r.Header.Get("X-Security-Context"); sc != "" {
		tree.Set("securityContext", obj("reference", sc))
	}
	req.tree = tree
	req.blob = blobOf(ref)
	return nil
}

// uploads records the blobs a request put into the store, so that a request that fails leaves
// none behind (no resource refers to them).
type uploads struct {
	mu  sync.Mutex
	ids []string
}

type uploadsKey struct{}

func withUploads(ctx context.Context) (context.Context, *uploads) {
	u := &uploads{}
	return context.WithValue(ctx, uploadsKey{}, u), u
}

// putBlob stores content in the blob store, recording it with the request's uploads.
func (s *Server) putBlob(ctx context.Context, r io.Reader) (blob.Ref, error) {
	ref, err := s.cfg.Blobs.Put(ctx, r)
	if u, ok := ctx.Value(uploadsKey{}).(*uploads); ok && err == nil {
		u.mu.Lock()
		u.ids = append(u.ids, ref.ID)
		u.mu.Unlock()
	}
	return ref, err
}

// discard deletes the blobs of a request that failed.
func (u *uploads) discard(ctx context.Context, st blob.Store) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	var errs []error
	for _, id := range u.ids {
		errs = append(errs, st.Delete(context.WithoutCancel(ctx), id))
	}
	u.ids = nil
	return errors.Join(errs...)
}

func blobOf(ref blob.Ref) *store.Blob {
	return &store.Blob{ID: ref.ID, Size: ref.Size, SHA256: ref.SHA256Hex()}
}

// binaryData moves a FHIR JSON Binary's base64 data into the blob store.
func (s *Server) binaryData(ctx context.Context, tree *jsontree.Value) (*store.Blob, error) {
	d := tree.Get("data")
	if d == nil {
		return nil, nil
	}
	if s.cfg.Blobs == nil {
		return nil, fhir.Errorf(fhir.ErrNotImplemented, "not-supported", "this server has no blob store for Binary content")
	}
	raw, err := decodeBase64(d.Str)
	if err != nil {
		return nil, fhir.Invalid("value", "Binary.data", "Binary.data is not base64: %v", err)
	}
	ref, err := s.putBlob(ctx, bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	tree.Delete("data")
	return blobOf(ref), nil
}

// mediaCompanion moves a Media's inline content.data into a new Binary and points the Media at it.
// The Binary's securityContext is the Media's subject, so access to it follows the patient.
func (s *Server) mediaCompanion(ctx context.Context, tree *jsontree.Value) (*store.Write, error) {
	content := tree.Get("content")
	if content == nil || content.Get("data") == nil {
		return nil, nil
	}
	bin := jsontree.NewObject()
	bin.Set("resourceType", jsontree.NewString("Binary"))
	ct := content.GetString("contentType")
	if ct == "" {
		return nil, fhir.Invalid("required", "Media.content.contentType", "inline Media content needs a contentType")
	}
	bin.Set("contentType", jsontree.NewString(ct))
	if subj := tree.Get("subject"); subj != nil {
		if ref := subj.GetString("reference"); ref != "" {
			bin.Set("securityContext", obj("reference", ref))
		}
	}
	bin.Set("data", content.Get("data"))
	id := resource.NewID()
	w, err := s.prepareWrite(ctx, "Binary", id, bin, nil)
	if err != nil {
		return nil, err
	}
	content.Delete("data")
	content.Set("url", jsontree.NewString("Binary/"+id))
	if content.Get("size") == nil && w.Blob != nil {
		content.Set("size", jsontree.NewNumber(strconv.FormatInt(w.Blob.Size, 10)))
	}
	return w, nil
}

// wantsFHIR reports whether a Binary read asks for the resource rather than its content.
func wantsFHIR(req *request) bool {
	if f := req.query.Get("_format"); f != "" {
		return true // negotiate accepted it, so it is a JSON format
	}
	for _, part := range strings.Split(req.accept, ",") {
		mt, _, _ := mime.ParseMediaType(strings.TrimSpace(part))
		if mt == "application/fhir+json" || mt == "application/json" || mt == "application/json+fhir" {
			return true
		}
	}
	return false
}

// binaryResponse serves a Binary version: its raw content (with Range) or its FHIR JSON with data.
func (s *Server) binaryResponse(ctx context.Context, rd reads, req *request, v *store.Version) (*response, error) {
	b, err := rd.BlobOf(ctx, v)
	if err != nil {
		return nil, err
	}
	tree, err := jsontree.Parse(v.Content)
	if err != nil {
		return nil, err
	}
	if !wantsFHIR(req) {
		if b == nil {
			return &response{status: http.StatusNoContent, version: v}, nil
		}
		ct := tree.GetString("contentType")
		return &response{status: http.StatusOK, version: v, size: b.Size, stream: func(w http.ResponseWriter, r *http.Request) error {
			obj, err := s.cfg.Blobs.Open(r.Context(), b.ID)
			if err != nil {
				return err
			}
			defer obj.Close()
			w.Header().Set("Content-Type", ct)
			w.Header().Set("Accept-Ranges", "bytes")
			http.ServeContent(w, r, "", v.LastUpdated, obj)
			return nil
		}}, nil
	}
	if b == nil {
		return &response{status: http.StatusOK, version: v}, nil
	}
	// The stored JSON without data, then ,"data":"<base64>"} encoded as the blob streams out.
	head := tree.Marshal()
	head = head[:len(head)-1]
	return &response{status: http.StatusOK, version: v, stream: func(w http.ResponseWriter, r *http.Request) error {
		obj, err := s.cfg.Blobs.Open(r.Context(), b.ID)
		if err != nil {
			return err
		}
		defer obj.Close()
		w.Header().Set("Content-Type", ContentType)
		w.Header().Set("Content-Length", strconv.FormatInt(int64(len(head))+int64(len(`,"data":""}`))+int64(base64.StdEncoding.EncodedLen(int(b.Size))), 10))
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodHead {
			return nil
		}
		_, _ = w.Write(head)
		_, _ = io.WriteString(w, `,"data":"`)
		enc := base64.NewEncoder(base64.StdEncoding, w)
		if _, err := io.Copy(enc, obj); err != nil {
			return err
		}
		_ = enc.Close()
		_, err = io.WriteString(w, `"}`)
		return err
	}}, nil
}
