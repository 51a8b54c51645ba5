// Test server for the parent audit on the JDK's own HTTP server with a
// thread pool executor (run as a single-file program: java FanoutServer.java PORT).
//   /fanout/<id>/<n>?base=B[&via=inline|pool]
//       GETs B/leaf/<id>/<k> for k < n, from the pool thread serving the
//       request (inline) or from a second, shared pool whose threads are
//       created lazily by whichever request needs one first (pool)
//   /leaf/...   200
// Prints "ready PORT" when listening.
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.HttpURLConnection;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

public class FanoutServer {
    static final ExecutorService CALLS = Executors.newFixedThreadPool(8);

    static int get(String url) throws IOException {
        HttpURLConnection c = (HttpURLConnection) URI.create(url).toURL().openConnection();
        c.setConnectTimeout(10_000);
        c.setReadTimeout(30_000);
        int status = c.getResponseCode();
        try (InputStream in = c.getInputStream()) {
            in.readAllBytes();
        }
        return status;
    }

    static Map<String, String> query(URI uri) {
        Map<String, String> q = new HashMap<>();
        String raw = uri.getRawQuery();
        if (raw == null) return q;
        for (String kv : raw.split("&")) {
            int eq = kv.indexOf('=');
            if (eq > 0) q.put(kv.substring(0, eq), URLDecoder.decode(kv.substring(eq + 1), StandardCharsets.UTF_8));
        }
        return q;
    }

    static void reply(HttpExchange ex, int code, String body) throws IOException {
        byte[] b = body.getBytes(StandardCharsets.UTF_8);
        ex.sendResponseHeaders(code, b.length);
        try (OutputStream out = ex.getResponseBody()) {
            out.write(b);
        }
    }

    static void handle(HttpExchange ex) throws IOException {
        try (InputStream in = ex.getRequestBody()) {
            in.readAllBytes();
        }
        URI uri = ex.getRequestURI();
        String[] parts = uri.getPath().replaceAll("^/+", "").split("/");
        if (parts[0].equals("fanout") && parts.length >= 3) {
            Map<String, String> q = query(uri);
            int n = Integer.parseInt(parts[2]);
            List<String> targets = new ArrayList<>();
            for (int k = 0; k < n; k++) targets.add(q.get("base") + "/leaf/" + parts[1] + "/" + k);
            int ok = 0;
            try {
                if ("pool".equals(q.get("via"))) {
                    List<Future<Integer>> fs = new ArrayList<>();
                    for (String t : targets) fs.add(CALLS.submit(() -> get(t)));
                    for (Future<Integer> f : fs) if (f.get() == 200) ok++;
                } else {
                    for (String t : targets) if (get(t) == 200) ok++;
                }
            } catch (Exception e) {
                reply(ex, 502, "error " + e + "\n");
                return;
            }
            reply(ex, 200, "fanout " + ok + "/" + n + "\n");
        } else if (parts[0].equals("leaf")) {
            reply(ex, 200, "leaf\n");
        } else {
            reply(ex, 404, "not found\n");
        }
    }

    public static void main(String[] args) throws IOException {
        int port = Integer.parseInt(args[0]);
        HttpServer server = HttpServer.create(new InetSocketAddress("127.0.0.1", port), 1024);
        server.createContext("/", FanoutServer::handle);
        server.setExecutor(Executors.newFixedThreadPool(16));
        server.start();
        System.out.println("ready " + port);
        System.out.flush();
    }
}
