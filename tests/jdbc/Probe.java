// What a JDBC BI tool does first: connect with a URL, run one query, read the columns' names,
// types and values. Run as a single source file: java -cp postgresql.jar Probe.java URL SQL
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.Statement;

public class Probe {
    public static void main(String[] args) throws Exception {
        try (Connection c = DriverManager.getConnection(args[0]);
             Statement s = c.createStatement();
             ResultSet rs = s.executeQuery(args[1])) {
            ResultSetMetaData md = rs.getMetaData();
            for (int i = 1; i <= md.getColumnCount(); i++) {
                System.out.println("column\t" + md.getColumnLabel(i) + "\t" + md.getColumnTypeName(i));
            }
            while (rs.next()) {
                StringBuilder row = new StringBuilder("row");
                for (int i = 1; i <= md.getColumnCount(); i++) {
                    row.append('\t').append(rs.getString(i));
                }
                System.out.println(row);
            }
        }
    }
}
