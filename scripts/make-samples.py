#!/usr/bin/env python3
"""Writes the demo's sample documents to samples/ (run once; the files are committed).

Each sample carries metadata a producer would not want in the lake: EXIF with camera serial and
GPS position, XMP, IPTC-like comments, PNG text chunks, PDF Info and XMP.
Needs Pillow (pip install pillow).
"""
import io
import os
import struct
import sys
import zlib

from PIL import Image, PngImagePlugin

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "samples")
os.makedirs(out, exist_ok=True)

XMP = (b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>'
       b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
       b'<rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:creator>Jane Photographer</dc:creator>'
       b'</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>')


def gradient(w, h):
    img = Image.new("RGB", (w, h))
    img.putdata([((x * 255) // w, (y * 255) // h, 128) for y in range(h) for x in range(w)])
    return img


def jpeg():
    img = gradient(64, 48)
    exif = Image.Exif()
    exif[0x010F] = "TarnCam"          # Make
    exif[0x0110] = "Model 7"          # Model
    exif[0x0112] = 6                  # Orientation: rotate 90 CW to display
    exif[0x0131] = "tarn-sample 1.0"  # Software
    exif[0xA431] = "SN-0042-SECRET"   # BodySerialNumber (ExifIFD tag, stored in IFD0 here)
    gps = {1: "N", 2: (48.0, 51.0, 29.0), 3: "E", 4: (2.0, 17.0, 40.0)}
    exif[0x8825] = gps
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85, exif=exif.tobytes(), comment=b"shot at home, 12 Rue Example")
    data = buf.getvalue()
    # insert an XMP APP1 segment right after SOI
    seg = b"http://ns.adobe.com/xap/1.0/\x00" + XMP
    app1 = b"\xff\xe1" + struct.pack(">H", len(seg) + 2) + seg
    return data[:2] + app1 + data[2:]


def png():
    img = gradient(32, 24)
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "Jane Photographer")
    info.add_text("Comment", "taken at 48.8582 N, 2.2945 E", zip=True)
    info.add_itxt("XML:com.adobe.xmp", XMP.decode("utf-8"))
    buf = io.BytesIO()
    img.save(buf, "PNG", pnginfo=info)
    return buf.getvalue()


def pdf():
    objs = []
    objs.append(b"<< /Type /Catalog /Pages 2 0 R /Metadata 6 0 R >>")
    objs.append(b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>")
    objs.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 100] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>")
    text = b"BT /F1 18 Tf 20 50 Td (Quarterly report) Tj ET"
    objs.append(b"<< /Length %d >>\nstream\n" % len(text) + text + b"\nendstream")
    objs.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    objs.append(b"<< /Type /Metadata /Subtype /XML /Length %d >>\nstream\n" % len(XMP) + XMP + b"\nendstream")
    objs.append(b"<< /Author (Jane Accountant) /Creator (TarnWriter 2.0) /Producer (tarn sample) /Title (Q3 numbers) >>")
    body = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n"
    offsets = []
    for i, o in enumerate(objs, 1):
        offsets.append(len(body))
        body += b"%d 0 obj\n" % i + o + b"\nendobj\n"
    xref = len(body)
    body += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    for off in offsets:
        body += b"%010d 00000 n \n" % off
    body += b"trailer\n<< /Size %d /Root 1 0 R /Info 7 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return body


for name, data in [("photo.jpg", jpeg()), ("diagram.png", png()), ("report.pdf", pdf())]:
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
    print(f"samples/{name}: {len(data)} bytes", file=sys.stderr)
